using RetriBooru.Settings;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>
/// The DDPM forward process: betas (scaled_linear: linspace(sqrt(b0), sqrt(b1), T)^2, or linear), alphas = 1 - beta,
/// alpha_bar_t = prod_{s&lt;=t} alpha_s. Training pairs come from <see cref="AddNoise"/>:
/// x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, and the target is eps (epsilon prediction) or
/// v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (v-prediction).
/// </summary>
public sealed class NoiseSchedule
{
    public ScheduleConfig Config { get; }
    public IReadOnlyList<double> Betas { get; }
    public IReadOnlyList<double> AlphasCumprod { get; }
    public int Steps => Betas.Count;
    public bool VPrediction => Config.PredictionType == PredictionType.VPrediction;
    /// <summary>x-prediction (diffusers' "sample"): the network outputs the clean image itself.</summary>
    public bool SamplePrediction => Config.PredictionType == PredictionType.Sample;

    public NoiseSchedule(ScheduleConfig config)
    {
        if (config.NumTrainTimesteps < 2) throw new ArgumentException($"num_train_timesteps must be at least 2, got {config.NumTrainTimesteps}");
        if (!Enum.IsDefined(config.PredictionType)) throw new ArgumentException($"unknown prediction_type {config.PredictionType} ({string.Join(", ", Words.All<PredictionType>())})");
        if (config.NumTrainTimesteps > MaxTrainTimesteps) throw new ArgumentException($"num_train_timesteps {config.NumTrainTimesteps} is above {MaxTrainTimesteps}");
        if (!Enum.IsDefined(config.TimestepSpacing)) throw new ArgumentException($"unknown timestep_spacing {config.TimestepSpacing} ({string.Join(", ", Words.All<TimestepSpacing>())})");
        if (!double.IsFinite(config.SigmaData) || config.SigmaData is < 0 or > 100) throw new ArgumentException($"sigma_data must be in [0, 100], got {config.SigmaData}");
        if (config.SigmaData > 0 && config.PredictionType != PredictionType.Sample) throw new ArgumentException("sigma_data (the input skip) applies to prediction_type sample only");
        if (config.RescaleBetasZeroSnr && config.PredictionType == PredictionType.Epsilon)
            throw new ArgumentException("rescale_betas_zero_snr needs prediction_type v_prediction or sample (an epsilon model cannot recover x0 at zero SNR)");
        Config = config;
        int n = config.NumTrainTimesteps;
        var betas = new double[n];
        for (int i = 0; i < n; i++)
        {
            double f = i / (double)(n - 1);
            betas[i] = config.BetaSchedule switch
            {
                BetaSchedule.ScaledLinear => Math.Pow(Math.Sqrt(config.BetaStart) + f * (Math.Sqrt(config.BetaEnd) - Math.Sqrt(config.BetaStart)), 2),
                BetaSchedule.Linear => config.BetaStart + f * (config.BetaEnd - config.BetaStart),
                // alpha_bar(s) = cos^2((s + 0.008) / 1.008 * pi / 2), betas from its ratios, capped at 0.999.
                BetaSchedule.SquaredCosCapV2 => Math.Min(1 - CosineAlphaBar((i + 1) / (double)n) / CosineAlphaBar(i / (double)n), 0.999),
                _ => throw new ArgumentException($"unknown beta_schedule {config.BetaSchedule} ({string.Join(", ", Words.All<BetaSchedule>())})"),
            };
        }
        if (config.RescaleBetasZeroSnr) betas = RescaleZeroTerminalSnr(betas);
        var cumulative = new double[n];
        double product = 1;
        for (int i = 0; i < n; i++) cumulative[i] = product *= 1 - betas[i];
        Betas = betas;
        AlphasCumprod = cumulative;
    }

    /// <summary>A bound checked before the tables are allocated (a config file could ask for billions).</summary>
    public const int MaxTrainTimesteps = SizeLimits.MaxTrainTimesteps;

    static double CosineAlphaBar(double s) => Math.Pow(Math.Cos((s + 0.008) / 1.008 * Math.PI / 2), 2);

    /// <summary>
    /// Shifts and scales sqrt(alpha_bar) so the first value is kept and the last becomes 0 (Lin et al. 2024, Algorithm 1),
    /// then recovers the betas. The last beta becomes 1: x_T is pure noise.
    /// </summary>
    static double[] RescaleZeroTerminalSnr(double[] betas)
    {
        int n = betas.Length;
        var sqrtAlphaBar = new double[n];
        double product = 1;
        for (int i = 0; i < n; i++) sqrtAlphaBar[i] = Math.Sqrt(product *= 1 - betas[i]);
        double first = sqrtAlphaBar[0], last = sqrtAlphaBar[n - 1];
        for (int i = 0; i < n; i++) sqrtAlphaBar[i] = (sqrtAlphaBar[i] - last) * first / (first - last);
        var rescaled = new double[n];
        double previous = 1;
        for (int i = 0; i < n; i++)
        {
            double alphaBar = sqrtAlphaBar[i] * sqrtAlphaBar[i];
            rescaled[i] = 1 - alphaBar / previous;
            previous = alphaBar;
        }
        return rescaled;
    }

    /// <summary>Signal-to-noise ratio alpha_bar / (1 - alpha_bar) of a timestep.</summary>
    public double Snr(int t) => AlphasCumprod[t] / Math.Max(1 - AlphasCumprod[t], 1e-20);

    /// <summary>
    /// Min-SNR-gamma loss weights (Hang et al. 2023) per timestep, shaped like <see cref="AlphaBar"/>: the per-timestep
    /// x0-error weight becomes min(SNR, gamma), written for the network's target: min(SNR, gamma) / (SNR + 1) for v,
    /// min(SNR, gamma) / SNR for epsilon. For x-prediction the x0 weight is min(SNR + 1, gamma): the v-space loss
    /// (x0 error / (1 - alpha_bar)) with its low-noise blow-up capped at gamma, as JiT (Li and He 2025) clamps it.
    /// Read from double tables (no tensor-scalar arithmetic on the hot path).
    /// </summary>
    public Tensor MinSnrWeights(Tensor t, Tensor like, double gamma)
    {
        if (!(gamma > 0) || !double.IsFinite(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "min-SNR gamma must be a positive finite number");
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = t.shape[0];
        var table = new double[Steps];
        for (int i = 0; i < Steps; i++)
        {
            double snr = Snr(i);
            table[i] = VPrediction ? Math.Min(snr, gamma) / (snr + 1)
                : SamplePrediction ? Math.Min(snr + 1, gamma)
                : Math.Min(snr, gamma) / Math.Max(snr, 1e-20);
        }
        using var index = t.to(int64).to(like.device);
        using var weights = tensor(table, dtype: float64, device: like.device);
        using var picked = weights.index_select(0, index);
        return picked.to(like.dtype).view(shape);
    }

    /// <summary>alpha_bar for each timestep in <paramref name="t"/>, shaped [B, 1, 1, ...] to broadcast over <paramref name="like"/>.</summary>
    public Tensor AlphaBar(Tensor t, Tensor like)
    {
        using var table = tensor(AlphasCumprod.ToArray(), dtype: float64, device: like.device);
        using var picked = table.index_select(0, t.to(int64).to(like.device));
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = t.shape[0];
        return picked.to(like.dtype).view(shape);
    }

    /// <summary>
    /// (sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) shaped like <see cref="AlphaBar"/>, read from double tables. No
    /// tensor-scalar arithmetic on this hot path: with TorchSharp 0.107 a temporary Scalar (as in <c>1 - a</c>) can be
    /// finalised during the native call when a GC happens then, which surfaced as a rare "Unknown scalar type".
    /// </summary>
    public (Tensor SqrtAlphaBar, Tensor SqrtOneMinusAlphaBar) Coefficients(Tensor t, Tensor like)
    {
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = t.shape[0];
        using var index = t.to(int64).to(like.device);
        using var signal = tensor(AlphasCumprod.Select(Math.Sqrt).ToArray(), dtype: float64, device: like.device);
        using var noise = tensor(AlphasCumprod.Select(a => Math.Sqrt(1 - a)).ToArray(), dtype: float64, device: like.device);
        using var pickedSignal = signal.index_select(0, index);
        using var pickedNoise = noise.index_select(0, index);
        return (pickedSignal.to(like.dtype).view(shape), pickedNoise.to(like.dtype).view(shape));
    }

    public Tensor AddNoise(Tensor x0, Tensor noise, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (signal, noiseScale) = Coefficients(t, x0);
        return (signal * x0).Plus(noiseScale * noise).MoveToOuterDisposeScope();
    }

    public Tensor Velocity(Tensor x0, Tensor noise, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (signal, noiseScale) = Coefficients(t, x0);
        return (signal * noise - noiseScale * x0).MoveToOuterDisposeScope();
    }

    /// <summary>What the network is trained to output at x_t: eps, v, or x0.</summary>
    public Tensor Target(Tensor x0, Tensor noise, Tensor t) => VPrediction ? Velocity(x0, noise, t) : SamplePrediction ? x0.alias() : noise.alias();

    /// <summary>Converts a model output at x_t to (predicted x0, predicted eps).</summary>
    public (Tensor X0, Tensor Eps) Split(Tensor modelOutput, Tensor sample, double alphaBar)
    {
        using var scope = NewDisposeScope();
        double sa = Math.Sqrt(alphaBar), sb = Math.Sqrt(1 - alphaBar);
        Tensor x0, eps;
        if (VPrediction)
        {
            x0 = sample.Times(sa) - modelOutput.Times(sb);
            eps = modelOutput.Times(sa).Plus(sample.Times(sb));
        }
        else if (SamplePrediction)
        {
            double c = SkipWeight(alphaBar);
            x0 = c > 0 ? sample.Times(c / sa).Plus(modelOutput.Times(1 - c)) : modelOutput.alias();
            eps = (sample - x0.Times(sa)).Over(Math.Max(sb, 1e-6));
        }
        else
        {
            eps = modelOutput.alias();
            x0 = (sample - modelOutput.Times(sb)).Over(sa);
        }
        return (x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }

    /// <summary>The input's share of the x0 estimate at a noise level (0 without <see cref="ScheduleConfig.SigmaData"/>).</summary>
    public double SkipWeight(double alphaBar)
    {
        double sd = Config.SigmaData;
        if (!SamplePrediction || sd <= 0) return 0;
        double sigma2 = (1 - alphaBar) / Math.Max(alphaBar, 1e-20);
        return sd * sd / (sigma2 + sd * sd);
    }

    /// <summary>
    /// What the training loss compares with <see cref="Target"/>: the network output itself, except for x-prediction
    /// with an input skip, where it is the blended x0 estimate (<see cref="ScheduleConfig.SigmaData"/>).
    /// </summary>
    public Tensor TrainingPrediction(Tensor modelOutput, Tensor sample, Tensor t)
    {
        if (!SamplePrediction || Config.SigmaData <= 0) return modelOutput.alias();
        using var scope = NewDisposeScope();
        var shape = new long[sample.dim()];
        Array.Fill(shape, 1L);
        shape[0] = t.shape[0];
        var inputScale = AlphasCumprod.Select(a => SkipWeight(a) / Math.Sqrt(Math.Max(a, 1e-20))).ToArray();
        var outputScale = AlphasCumprod.Select(a => 1 - SkipWeight(a)).ToArray();
        using var index = t.to(int64).to(sample.device);
        using var inputTable = tensor(inputScale, dtype: float64, device: sample.device);
        using var outputTable = tensor(outputScale, dtype: float64, device: sample.device);
        var ci = inputTable.index_select(0, index).to(sample.dtype).view(shape);
        var co = outputTable.index_select(0, index).to(sample.dtype).view(shape);
        return (ci * sample).Plus(co * modelOutput).MoveToOuterDisposeScope();
    }

    /// <summary>Uniform random training timesteps [B] in [0, T).</summary>
    public Tensor SampleTimesteps(long batch, Generator generator, Device? device = null) =>
        randint(0, Steps, [batch], dtype: int64, generator: generator).to(device ?? CPU);
}
