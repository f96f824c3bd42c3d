using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Settings;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class DiffusionScheduleTests
{
    [Fact]
    public void Scaled_linear_schedule_matches_closed_forms_and_sd_sigmas()
    {
        var s = new NoiseSchedule(new ScheduleConfig());
        Assert.Equal(1000, s.Steps);
        Assert.Equal(0.00085, s.Betas[0], 12);
        Assert.Equal(0.012, s.Betas[999], 12);
        // Square roots of the betas are evenly spaced.
        double d1 = Math.Sqrt(s.Betas[1]) - Math.Sqrt(s.Betas[0]), d2 = Math.Sqrt(s.Betas[600]) - Math.Sqrt(s.Betas[599]);
        Assert.Equal(d1, d2, 12);
        Assert.Equal((Math.Sqrt(0.012) - Math.Sqrt(0.00085)) / 999, d1, 12);
        // alpha_bar_t = prod (1 - beta_s) = exp(sum log(1 - beta_s)).
        Assert.Equal(Math.Exp(s.Betas.Take(501).Sum(b => Math.Log(1 - b))), s.AlphasCumprod[500], 12);
        // The sigma range every SD1.x sampler reports: sigma = sqrt((1 - a) / a) runs 0.0292 .. 14.6146.
        Assert.Equal(0.0292, Math.Sqrt((1 - s.AlphasCumprod[0]) / s.AlphasCumprod[0]), 4);
        Assert.Equal(14.6146, Math.Sqrt((1 - s.AlphasCumprod[999]) / s.AlphasCumprod[999]), 3);

        var linear = new NoiseSchedule(new ScheduleConfig { BetaSchedule = BetaSchedule.Linear, BetaStart = 1e-4, BetaEnd = 0.02 });
        Assert.Equal(1e-4 + (0.02 - 1e-4) * 500 / 999, linear.Betas[500], 12);
    }

    [Fact]
    public void Add_noise_and_v_target_follow_their_formulas()
    {
        Torch.Load();
        var s = new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.VPrediction });
        using var g = new Generator(0).manual_seed(1);
        var x0 = randn([2, 3, 4, 4], generator: g).to(float64);
        var eps = randn([2, 3, 4, 4], generator: g).to(float64);
        var t = tensor(new long[] { 0, 999 });
        var xt = s.AddNoise(x0, eps, t);
        for (int i = 0; i < 2; i++)
        {
            double a = s.AlphasCumprod[i == 0 ? 0 : 999];
            Assert.True(xt[i].allclose(Math.Sqrt(a) * x0[i] + Math.Sqrt(1 - a) * eps[i], 1e-12, 1e-12));
        }
        var v = s.Target(x0, eps, t);
        // Split inverts the parameterisation: (x_t, v) -> (x0, eps).
        var (x0Back, epsBack) = s.Split(v[1].unsqueeze(0), xt[1].unsqueeze(0), s.AlphasCumprod[999]);
        Assert.True(x0Back.allclose(x0[1].unsqueeze(0), 1e-9, 1e-9));
        Assert.True(epsBack.allclose(eps[1].unsqueeze(0), 1e-9, 1e-9));
    }

    [Fact]
    public void Ddim_timesteps_use_leading_spacing_with_offset()
    {
        var ddim = new DdimSampler(new NoiseSchedule(new ScheduleConfig()));
        var steps = ddim.Timesteps(50);
        Assert.Equal(50, steps.Length);
        Assert.Equal(981, steps[0]);
        Assert.Equal(1, steps[^1]);
        Assert.All(steps.Zip(steps.Skip(1)), p => Assert.Equal(20, p.First - p.Second));
        Assert.Equal(Enumerable.Range(0, 1000).Reverse(), ddim.Timesteps(1000));
        Assert.Throws<ArgumentException>(() => ddim.Timesteps(0));
    }

    /// <summary>A 1-D two-Gaussian mixture: the optimal eps predictor is known in closed form at every noise level.</summary>
    internal sealed class Mixture
    {
        public readonly double[] W = [0.3, 0.7], Mu = [-2.0, 1.5], Sd = [0.3, 0.5];

        public Tensor OptimalEps(Tensor x, Tensor t, NoiseSchedule s)
        {
            using var scope = NewDisposeScope();
            double a = s.AlphasCumprod[(int)t[0].item<long>()];
            var logs = new List<Tensor>();
            var scores = new List<Tensor>();
            for (int k = 0; k < 2; k++)
            {
                double m = Math.Sqrt(a) * Mu[k], v = a * Sd[k] * Sd[k] + 1 - a;
                logs.Add(Math.Log(W[k]) - 0.5 * Math.Log(v) - (x - m).pow(2) / (2 * v));
                scores.Add(-(x - m) / v);
            }
            var r = stack(logs).softmax(0);
            var score = (r * stack(scores)).sum(dim: 0);
            return (-Math.Sqrt(1 - a) * score).MoveToOuterDisposeScope();
        }

        public double Mean => W[0] * Mu[0] + W[1] * Mu[1];
        public double Variance => W[0] * (Sd[0] * Sd[0] + Mu[0] * Mu[0]) + W[1] * (Sd[1] * Sd[1] + Mu[1] * Mu[1]) - Mean * Mean;
    }

    static (double Mean, double Var, double Left) Stats(Tensor x) =>
        (x.mean().item<double>(), x.var().item<double>(), (x < 0).to(float64).mean().item<double>());

    [Fact]
    public void Ddim_eta1_with_all_steps_matches_ddpm_ancestral_in_distribution()
    {
        Torch.Load();
        var schedule = new NoiseSchedule(new ScheduleConfig());
        var mixture = new Mixture();
        Denoiser eps = (x, t) => mixture.OptimalEps(x, t, schedule);
        const int n = 4000;
        using var g1 = new Generator(0).manual_seed(11);
        using var g2 = new Generator(0).manual_seed(12);
        using var g3 = new Generator(0).manual_seed(13);
        var ddim = new DdimSampler(schedule).Sample(eps, randn([n, 1], dtype: float64, generator: g1), 1000, eta: 1.0, generator: g1);
        var ddpm = new DdpmSampler(schedule).Sample(eps, randn([n, 1], dtype: float64, generator: g2), g2);
        var ddim50 = new DdimSampler(schedule).Sample(eps, randn([n, 1], dtype: float64, generator: g3), 50, eta: 0.0);

        var (m1, v1, l1) = Stats(ddim);
        var (m2, v2, l2) = Stats(ddpm);
        var (m3, v3, l3) = Stats(ddim50);
        // Sampling error at n = 4000: sd(mean) ~ 0.026, sd(fraction) ~ 0.007.
        Assert.InRange(Math.Abs(m1 - m2), 0, 0.12);
        Assert.InRange(Math.Abs(v1 - v2), 0, 0.3);
        Assert.InRange(Math.Abs(l1 - l2), 0, 0.035);
        foreach (var (m, v, l) in new[] { (m1, v1, l1), (m2, v2, l2), (m3, v3, l3) })
        {
            Assert.InRange(m, mixture.Mean - 0.1, mixture.Mean + 0.1);
            Assert.InRange(v, mixture.Variance - 0.3, mixture.Variance + 0.3);
            Assert.InRange(l, 0.3 - 0.03, 0.3 + 0.03);
        }
        // Mode widths: the left mode's spread is its component's 0.3, not smeared by the sampler.
        var left = ddim.masked_select(ddim < 0);
        Assert.InRange(left.std().item<double>(), 0.24, 0.36);
    }

    [Fact]
    public void Clip_sample_keeps_x0_in_range_and_is_consistent_with_eps()
    {
        Torch.Load();
        var clipped = new DdimSampler(new NoiseSchedule(new ScheduleConfig { ClipSample = true }));
        var free = new DdimSampler(new NoiseSchedule(new ScheduleConfig()));
        var x = full([1, 4], 0.5f);
        var wild = full([1, 4], -40f); // implies x0 far above 1
        double aPrev = clipped.Schedule.AlphasCumprod[480];
        var next = clipped.Step(wild, 500, 480, x, 0, null);
        // With x0 clamped to 1 and eps re-derived from it, the step lands exactly on the noised x0 = 1 trajectory.
        double a = clipped.Schedule.AlphasCumprod[500];
        double eps = (0.5 - Math.Sqrt(a)) / Math.Sqrt(1 - a);
        Assert.Equal(Math.Sqrt(aPrev) + Math.Sqrt(1 - aPrev) * eps, next[0, 0].item<float>(), 4);
        Assert.True(free.Step(wild, 500, 480, x, 0, null)[0, 0].item<float>() > 2); // unclipped: x0 ~ 66 drags the sample off the data range
    }

    [Fact]
    public void Classifier_free_guidance_batches_uncond_then_cond_and_extrapolates()
    {
        Torch.Load();
        var cond = full([1, 2, 3], 1.0f);
        var uncond = full([1, 2, 3], -1.0f);
        var seen = new List<long>();
        Func<Tensor, Tensor, Tensor, Tensor> network = (x, t, ctx) =>
        {
            seen.Add(x.shape[0]);
            // Output depends only on the context row: +1 for cond, -1 for uncond.
            return x * 0 + ctx.mean([1, 2]).view(-1, 1, 1, 1);
        };
        var guided = ClassifierFreeGuidance.Guided(network, cond, uncond, 7.5);
        var output = guided(zeros(1, 4, 2, 2), tensor(new long[] { 5 }));
        Assert.Equal(2, seen[0]);
        Assert.Equal(-1 + 7.5 * 2, output.mean().item<float>(), 5);
        var plain = ClassifierFreeGuidance.Guided(network, cond, uncond, 1.0)(zeros(1, 4, 2, 2), tensor(new long[] { 5 }));
        Assert.Equal(1, seen[1]);
        Assert.Equal(1f, plain.mean().item<float>(), 5);
    }
}
