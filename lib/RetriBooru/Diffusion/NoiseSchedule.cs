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
    public bool VPrediction => Config.PredictionType == "v_prediction";

    public NoiseSchedule(ScheduleConfig config)
    {
        if (config.NumTrainTimesteps < 2) throw new ArgumentException($"num_train_timesteps must be at least 2, got {config.NumTrainTimesteps}");
        if (config.PredictionType is not ("epsilon" or "v_prediction")) throw new ArgumentException($"unknown prediction_type '{config.PredictionType}' (epsilon or v_prediction)");
        Config = config;
        int n = config.NumTrainTimesteps;
        var betas = new double[n];
        for (int i = 0; i < n; i++)
        {
            double f = i / (double)(n - 1);
            betas[i] = config.BetaSchedule switch
            {
                "scaled_linear" => Math.Pow(Math.Sqrt(config.BetaStart) + f * (Math.Sqrt(config.BetaEnd) - Math.Sqrt(config.BetaStart)), 2),
                "linear" => config.BetaStart + f * (config.BetaEnd - config.BetaStart),
                _ => throw new ArgumentException($"unknown beta_schedule '{config.BetaSchedule}' (scaled_linear or linear)"),
            };
        }
        var cumulative = new double[n];
        double product = 1;
        for (int i = 0; i < n; i++) cumulative[i] = product *= 1 - betas[i];
        Betas = betas;
        AlphasCumprod = cumulative;
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
        return (signal * x0 + noiseScale * noise).MoveToOuterDisposeScope();
    }

    public Tensor Velocity(Tensor x0, Tensor noise, Tensor t)
    {
        using var scope = NewDisposeScope();
        var (signal, noiseScale) = Coefficients(t, x0);
        return (signal * noise - noiseScale * x0).MoveToOuterDisposeScope();
    }

    /// <summary>What the network is trained to output at x_t: eps, or v.</summary>
    public Tensor Target(Tensor x0, Tensor noise, Tensor t) => VPrediction ? Velocity(x0, noise, t) : noise.alias();

    /// <summary>Converts a model output at x_t to (predicted x0, predicted eps).</summary>
    public (Tensor X0, Tensor Eps) Split(Tensor modelOutput, Tensor sample, double alphaBar)
    {
        using var scope = NewDisposeScope();
        double sa = Math.Sqrt(alphaBar), sb = Math.Sqrt(1 - alphaBar);
        Tensor x0, eps;
        if (VPrediction)
        {
            x0 = sa * sample - sb * modelOutput;
            eps = sa * modelOutput + sb * sample;
        }
        else
        {
            eps = modelOutput.alias();
            x0 = (sample - sb * modelOutput) / sa;
        }
        return (x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }

    /// <summary>Uniform random training timesteps [B] in [0, T).</summary>
    public Tensor SampleTimesteps(long batch, Generator generator, Device? device = null) =>
        randint(0, Steps, [batch], dtype: int64, generator: generator).to(device ?? CPU);
}
