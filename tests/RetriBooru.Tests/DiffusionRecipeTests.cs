using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Settings;
using RetriBooru.Weights;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

/// <summary>The pixel-space recipe's parts: schedules, timestep spacing, loss weighting, learning-rate decay.</summary>
public class DiffusionRecipeTests
{
    [Fact]
    public void Cosine_schedule_follows_its_closed_form_alpha_bar()
    {
        var s = new NoiseSchedule(new ScheduleConfig { BetaSchedule = BetaSchedule.SquaredCosCapV2 });
        static double F(double x) => Math.Pow(Math.Cos((x + 0.008) / 1.008 * Math.PI / 2), 2);
        // Uncapped steps telescope: alpha_bar_t = f((t + 1) / T) / f(0).
        Assert.Equal(F(501 / 1000.0) / F(0), s.AlphasCumprod[500], 10);
        Assert.True(s.Betas.All(b => b is > 0 and <= 0.999));
    }

    [Fact]
    public void Zero_terminal_snr_makes_the_last_timestep_pure_noise_and_keeps_the_first()
    {
        var plain = new NoiseSchedule(new ScheduleConfig { BetaSchedule = BetaSchedule.SquaredCosCapV2, PredictionType = PredictionType.VPrediction });
        var zero = new NoiseSchedule(new ScheduleConfig { BetaSchedule = BetaSchedule.SquaredCosCapV2, PredictionType = PredictionType.VPrediction, RescaleBetasZeroSnr = true });
        Assert.Equal(0, zero.AlphasCumprod[^1], 12);
        Assert.Equal(plain.AlphasCumprod[0], zero.AlphasCumprod[0], 12);
        for (int t = 1; t < zero.Steps; t++) Assert.True(zero.AlphasCumprod[t] < zero.AlphasCumprod[t - 1]);
        // An epsilon model cannot recover x0 where there is no signal.
        Assert.Throws<ArgumentException>(() => new NoiseSchedule(new ScheduleConfig { RescaleBetasZeroSnr = true }));
    }

    [Fact]
    public void Trailing_spacing_starts_at_the_last_timestep_and_leading_does_not()
    {
        var trailing = new DdimSampler(new NoiseSchedule(new ScheduleConfig { TimestepSpacing = TimestepSpacing.Trailing })).Timesteps(15);
        Assert.Equal(999, trailing[0]);
        Assert.Equal(15, trailing.Distinct().Count());
        Assert.True(trailing.Zip(trailing.Skip(1)).All(p => p.First > p.Second));
        Assert.Equal(66, trailing[^1]);
        var leading = new DdimSampler(new NoiseSchedule(new ScheduleConfig())).Timesteps(15);
        Assert.Equal(925, leading[0]);
        // Domain words in a config file are parsed where it is read: one line naming the file and field, with a hint.
        using var dir = new TempDir();
        var path = dir.File("scheduler_config.json");
        File.WriteAllText(path, """{ "timestep_spacing": "sideways", "prediction_type": "sample" }""");
        var e = Assert.Throws<InvalidDataException>(() => DiffusersConfigJson.ReadSchedule(path));
        Assert.Equal($"{path}: field 'timestep_spacing': unknown timestep spacing 'sideways'; use leading, trailing or linspace", e.Message);
        File.WriteAllText(path, """{ "timestep_spacing": "trailing", "prediction_type": "v_predicton" }""");
        e = Assert.Throws<InvalidDataException>(() => DiffusersConfigJson.ReadSchedule(path));
        Assert.Contains("field 'prediction_type': unknown prediction type 'v_predicton' (did you mean 'v_prediction'?)", e.Message);
        File.WriteAllText(path, """{ "timestep_spacing": "trailing", "prediction_type": "v_prediction", "beta_schedule": "squaredcos_cap_v2" }""");
        var read = DiffusersConfigJson.ReadSchedule(path);
        Assert.Equal((TimestepSpacing.Trailing, PredictionType.VPrediction, BetaSchedule.SquaredCosCapV2), (read.TimestepSpacing, read.PredictionType, read.BetaSchedule));
        // Written with the same spellings diffusers uses.
        Assert.Contains("\"prediction_type\": \"v_prediction\"", DiffusersConfigJson.Write(read));
    }

    [Fact]
    public void With_alpha_to_one_the_last_ddim_step_returns_the_clean_estimate()
    {
        Torch.Load();
        var schedule = new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.VPrediction, SetAlphaToOne = true });
        var ddim = new DdimSampler(schedule);
        using var g = new Generator(0).manual_seed(3);
        var x = randn([1, 3, 4, 4], generator: g);
        var v = randn([1, 3, 4, 4], generator: g);
        var (x0, _) = schedule.Split(v, x, schedule.AlphasCumprod[1]);
        Assert.True(ddim.Step(v, 1, -1, x, 0, null).allclose(x0, 1e-6, 1e-6));
        var keepsNoise = new DdimSampler(new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.VPrediction }));
        Assert.False(keepsNoise.Step(v, 1, -1, x, 0, null).allclose(x0, 1e-6, 1e-6));
    }

    [Fact]
    public void X_prediction_targets_the_clean_image_and_splits_back_to_it()
    {
        Torch.Load();
        var s = new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.Sample });
        using var g = new Generator(0).manual_seed(5);
        var x0 = randn([2, 3, 4, 4], generator: g).to(float64);
        var eps = randn([2, 3, 4, 4], generator: g).to(float64);
        var t = tensor(new long[] { 300, 300 });
        Assert.True(s.Target(x0, eps, t).allclose(x0));
        var xt = s.AddNoise(x0, eps, t);
        var (x0Back, epsBack) = s.Split(x0, xt, s.AlphasCumprod[300]);
        Assert.True(x0Back.allclose(x0, 1e-9, 1e-9));
        Assert.True(epsBack.allclose(eps, 1e-9, 1e-9));
        // The x0 weight is min(SNR + 1, gamma): 1 at high noise, gamma at low noise.
        using var like = zeros(2, 1, 1, 1);
        var w = s.MinSnrWeights(tensor(new long[] { 999, 0 }), like, 5).flatten().data<float>().ToArray();
        Assert.Equal(s.Snr(999) + 1, w[0], 5);
        Assert.Equal(5, w[1], 5);
    }

    [Fact]
    public void The_input_skip_passes_the_input_through_at_low_noise_and_the_network_at_high_noise()
    {
        Torch.Load();
        var s = new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.Sample, SigmaData = 0.5 });
        Assert.True(s.SkipWeight(s.AlphasCumprod[0]) > 0.99);
        Assert.True(s.SkipWeight(s.AlphasCumprod[999]) < 0.02);
        using var x = ones(1, 3, 2, 2);
        using var f = zeros(1, 3, 2, 2);
        var blended = s.TrainingPrediction(f, x, tensor(new long[] { 0 }));
        var (x0, _) = s.Split(f, x, s.AlphasCumprod[0]);
        Assert.True(blended.allclose(x0, 1e-5, 1e-5));
        Assert.Throws<ArgumentException>(() => new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.VPrediction, SigmaData = 0.5 }));
    }

    [Fact]
    public void Min_snr_weights_cap_the_x0_weight_at_gamma()
    {
        Torch.Load();
        var v = new NoiseSchedule(new ScheduleConfig { PredictionType = PredictionType.VPrediction });
        var eps = new NoiseSchedule(new ScheduleConfig());
        var t = tensor(new long[] { 0, 500, 999 });
        using var like = zeros(3, 2, 2, 2);
        var wv = v.MinSnrWeights(t, like, 5).flatten().data<float>().ToArray();
        var we = eps.MinSnrWeights(t, like, 5).flatten().data<float>().ToArray();
        int[] steps = [0, 500, 999];
        for (int i = 0; i < 3; i++)
        {
            double snr = v.Snr(steps[i]);
            Assert.Equal(Math.Min(snr, 5) / (snr + 1), wv[i], 5);
            Assert.Equal(Math.Min(snr, 5) / snr, we[i], 5);
        }
        // Low noise (SNR above gamma) is down-weighted; high noise keeps the plain epsilon weight 1.
        Assert.True(we[0] < 0.01 && Math.Abs(we[2] - 1) < 1e-6);
        Assert.Throws<ArgumentOutOfRangeException>(() => v.MinSnrWeights(t, like, double.NaN));
    }

    [Fact]
    public void Cosine_learning_rate_warms_up_peaks_and_decays_to_zero()
    {
        var o = new TrainerOptions { Steps = 1000, WarmupSteps = 100, LearningRate = 2e-3, LearningRateSchedule = RetriBooru.Settings.LearningRateSchedule.Cosine };
        Assert.Equal(2e-3 / 100, o.LearningRateAt(0), 12);
        Assert.Equal(2e-3, o.LearningRateAt(100), 12);
        Assert.Equal(1e-3, o.LearningRateAt(550), 9);
        Assert.True(o.LearningRateAt(999) < 1e-7);
        Assert.Equal(2e-3, (o with { LearningRateSchedule = RetriBooru.Settings.LearningRateSchedule.Constant }).LearningRateAt(999), 12);
    }

    [Theory]
    [InlineData("lr")]
    [InlineData("schedule")]
    [InlineData("batch")]
    [InlineData("ema")]
    public void Trainer_options_refuse_bad_values_with_a_message_naming_them(string field)
    {
        var ok = new TrainerOptions();
        ok.Validate();
        var bad = field switch
        {
            "lr" => ok with { LearningRate = double.NaN },
            "schedule" => ok with { LearningRateSchedule = (RetriBooru.Settings.LearningRateSchedule)7 },
            "batch" => ok with { BatchSize = 100_000_000 },
            _ => ok with { EmaDecay = 1.5 },
        };
        var e = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Contains(field switch { "lr" => "learning rate", "schedule" => "learning-rate schedule", "batch" => "batch size", _ => "EMA" }, e.Message);
    }

    [Fact]
    public void Sampling_options_refuse_non_finite_and_out_of_range_values_before_sampling()
    {
        new ReferenceSamplingOptions().Validate();
        new SamplingOptions().Validate();
        Assert.Contains("text guidance", Assert.Throws<ArgumentException>(() => new ReferenceSamplingOptions { TextScale = double.NaN }.Validate()).Message);
        Assert.Contains("reference guidance", Assert.Throws<ArgumentException>(() => new ReferenceSamplingOptions { ReferenceScale = double.PositiveInfinity }.Validate()).Message);
        Assert.Contains("sampling steps", Assert.Throws<ArgumentException>(() => new ReferenceSamplingOptions { Steps = 0 }.Validate()).Message);
        Assert.Contains("guidance scale", Assert.Throws<ArgumentException>(() => new SamplingOptions { GuidanceScale = double.NaN }.Validate()).Message);
        Assert.Contains("eta", Assert.Throws<ArgumentException>(() => new SamplingOptions { Eta = -1 }.Validate()).Message);
        Assert.Throws<ArgumentException>(() => new Metrics.EvaluationOptions { Sampling = new ReferenceSamplingOptions { TextScale = double.NaN } }.Validate());
    }

    [Fact]
    public void Schedule_options_survive_the_diffusers_scheduler_config()
    {
        var config = new ScheduleConfig { BetaSchedule = BetaSchedule.SquaredCosCapV2, PredictionType = PredictionType.VPrediction, RescaleBetasZeroSnr = true, TimestepSpacing = TimestepSpacing.Trailing, SetAlphaToOne = true, ClipSample = true };
        var path = Path.Combine(Path.GetTempPath(), $"scheduler-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(path, DiffusersConfigJson.Write(config));
            Assert.Equal(config, DiffusersConfigJson.ReadSchedule(path));
        }
        finally { File.Delete(path); }
    }
}
