using RetriBooru.Settings;
using static TorchSharp.torch;
using RetriBooru.Runtime;

namespace RetriBooru.Diffusion;

/// <summary>A noise (or v) predictor: (x_t [B, ...], timesteps [B]) -> model output, same shape as x_t.</summary>
public delegate Tensor Denoiser(Tensor sample, Tensor timesteps);

/// <summary>
/// DDIM (Song et al. 2021) with diffusers' "leading" timestep spacing and <c>set_alpha_to_one = false</c>:
/// x_{t'} = sqrt(a') x0_hat + sqrt(1 - a' - s^2) eps_hat + s z, with s = eta sqrt((1 - a')/(1 - a)) sqrt(1 - a/a').
/// eta = 0 is deterministic; eta = 1 with every timestep is DDPM's ancestral sampler.
/// </summary>
public sealed class DdimSampler(NoiseSchedule schedule)
{
    public NoiseSchedule Schedule { get; } = schedule;

    /// <summary>
    /// The descending timesteps of an N-step run, as diffusers spaces them: "leading" (i * T/N + offset for
    /// i = N-1 .. 0), "trailing" (round(T - i T/N) - 1 for i = 0 .. N-1: the first step is T - 1) or "linspace".
    /// </summary>
    public int[] Timesteps(int steps)
    {
        if (steps < 1 || steps > Schedule.Steps) throw new ArgumentException($"DDIM steps must be in [1, {Schedule.Steps}], got {steps}");
        int T = Schedule.Steps;
        return Schedule.Config.TimestepSpacing switch
        {
            TimestepSpacing.Trailing => Enumerable.Range(0, steps).Select(i => Math.Max((int)Math.Round(T - i * (double)T / steps) - 1, 0)).ToArray(),
            TimestepSpacing.Linspace => Enumerable.Range(0, steps).Select(i => (int)Math.Round(steps == 1 ? T - 1 : i * (T - 1) / (double)(steps - 1))).Reverse().ToArray(),
            _ => LeadingTimesteps(steps),
        };
    }

    int[] LeadingTimesteps(int steps)
    {
        int ratio = Schedule.Steps / steps;
        int offset = steps == Schedule.Steps ? 0 : Schedule.Config.StepsOffset;
        return Enumerable.Range(0, steps).Select(i => Math.Min(i * ratio + offset, Schedule.Steps - 1)).Reverse().ToArray();
    }

    /// <summary>alpha_bar after the last step: 1 (the clean estimate) with set_alpha_to_one, else alpha_bar_0.</summary>
    public double FinalAlphaBar => Schedule.Config.SetAlphaToOne ? 1.0 : Schedule.AlphasCumprod[0];

    /// <summary>One step from timestep <paramref name="t"/> to <paramref name="tPrev"/> (-1 = the end, alpha_bar = <see cref="FinalAlphaBar"/>).</summary>
    public Tensor Step(Tensor modelOutput, int t, int tPrev, Tensor sample, double eta, Generator? generator)
    {
        using var scope = NewDisposeScope();
        double a = Schedule.AlphasCumprod[t];
        double aPrev = tPrev >= 0 ? Schedule.AlphasCumprod[tPrev] : FinalAlphaBar;
        var (x0, eps) = Schedule.Split(modelOutput, sample, a);
        if (Schedule.Config.ClipSample)
        {
            x0 = x0.Clamped(-1, 1);
            eps = (sample - x0.Times(Math.Sqrt(a))).Over(Math.Sqrt(1 - a));
        }
        if (aPrev >= 1) return x0.MoveToOuterDisposeScope();
        double variance = (1 - aPrev) / (1 - a) * (1 - a / aPrev);
        double std = eta * Math.Sqrt(Math.Max(variance, 0));
        var next = x0.Times(Math.Sqrt(aPrev)).Plus(eps.Times(Math.Sqrt(Math.Max(1 - aPrev - std * std, 0))));
        if (std > 0) next = next.Plus(randn(sample.shape, dtype: sample.dtype, device: sample.device, generator: generator).Times(std));
        return next.MoveToOuterDisposeScope();
    }

    /// <summary>Runs the sampler from <paramref name="initialNoise"/>; every step runs in its own dispose scope.</summary>
    public Tensor Sample(Denoiser denoise, Tensor initialNoise, int steps, double eta = 0, Generator? generator = null, IProgress<int>? progress = null)
    {
        var timesteps = Timesteps(steps);
        var x = initialNoise.alias();
        for (int i = 0; i < timesteps.Length; i++)
        {
            using var scope = NewDisposeScope();
            int t = timesteps[i], tPrev = i + 1 < timesteps.Length ? timesteps[i + 1] : -1;
            using var tBatch = ScalarOps.Filled([x.shape[0]], t, int64, x.device);
            var output = denoise(x, tBatch);
            var next = Step(output, t, tPrev, x, eta, generator).MoveToOuterDisposeScope();
            x.Dispose();
            x = next;
            progress?.Report(i + 1);
        }
        return x;
    }
}

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020): x_{t-1} = posterior mean(x0_hat, x_t) + sqrt(beta_tilde_t) z,
/// with beta_tilde_t = (1 - a_{t-1})/(1 - a_t) beta_t. The reference DDIM(eta = 1, all steps) is tested against.
/// </summary>
public sealed class DdpmSampler(NoiseSchedule schedule)
{
    public NoiseSchedule Schedule { get; } = schedule;

    public Tensor Step(Tensor modelOutput, int t, Tensor sample, Generator? generator)
    {
        using var scope = NewDisposeScope();
        double a = Schedule.AlphasCumprod[t];
        double aPrev = t > 0 ? Schedule.AlphasCumprod[t - 1] : 1.0;
        double beta = Schedule.Betas[t];
        var (x0, _) = Schedule.Split(modelOutput, sample, a);
        if (Schedule.Config.ClipSample) x0 = x0.Clamped(-1, 1);
        double c0 = Math.Sqrt(aPrev) * beta / (1 - a);
        double ct = Math.Sqrt(1 - beta) * (1 - aPrev) / (1 - a);
        var mean = x0.Times(c0).Plus(sample.Times(ct));
        if (t == 0) return mean.MoveToOuterDisposeScope();
        double variance = (1 - aPrev) / (1 - a) * beta;
        return mean.Plus(randn(sample.shape, dtype: sample.dtype, device: sample.device, generator: generator).Times(Math.Sqrt(variance))).MoveToOuterDisposeScope();
    }

    public Tensor Sample(Denoiser denoise, Tensor initialNoise, Generator? generator = null)
    {
        var x = initialNoise.alias();
        for (int t = Schedule.Steps - 1; t >= 0; t--)
        {
            using var scope = NewDisposeScope();
            using var tBatch = ScalarOps.Filled([x.shape[0]], t, int64, x.device);
            var next = Step(denoise(x, tBatch), t, x, generator).MoveToOuterDisposeScope();
            x.Dispose();
            x = next;
        }
        return x;
    }
}

/// <summary>Classifier-free guidance: out = uncond + scale (cond - uncond), with both branches in one batch.</summary>
public static class ClassifierFreeGuidance
{
    public static Tensor Combine(Tensor unconditional, Tensor conditional, double scale) =>
        unconditional.Plus((conditional - unconditional).Times(scale));

    /// <summary>
    /// Wraps a conditional network into a <see cref="Denoiser"/>: the batch is doubled as [uncond; cond] with
    /// the matching context rows, and the halves are combined. Scale 1 (or no unconditional context) runs only the conditional branch.
    /// </summary>
    public static Denoiser Guided(Func<Tensor, Tensor, Tensor, Tensor> network, Tensor conditionalContext, Tensor? unconditionalContext, double scale)
    {
        if (unconditionalContext is null || scale == 1.0)
            return (x, t) => network(x, t, conditionalContext);
        return (x, t) =>
        {
            using var scope = NewDisposeScope();
            var both = network(cat([x, x]), cat([t, t]), cat([unconditionalContext, conditionalContext]));
            var halves = both.chunk(2);
            return Combine(halves[0], halves[1], scale).MoveToOuterDisposeScope();
        };
    }
}
