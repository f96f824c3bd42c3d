using System.Globalization;
using System.Text.Json.Serialization;
using RetriBooru.Modeling;
using RetriBooru.Settings;

namespace RetriBooru.Diffusion;

/// <summary>
/// Base text-to-image training (the spec's <c>base</c> section, the <c>train-base</c> verb's flags): the model config
/// with its overrides for a fresh model, and the optimisation schedule. Defined once here with JSON names, defaults,
/// ranges and help; the spec loader and the CLI read them from here.
/// </summary>
public sealed record BaseTrainingOptions
{
    [JsonPropertyName("config"), Setting("Model config (tiny; sd15 needs --tokenizer and a GPU).")]
    public string Config { get; init; } = "tiny";

    [JsonPropertyName("steps"), Setting("Optimisation steps.", Min = 0, Max = 10_000_000)]
    public int Steps { get; init; } = 1500;

    [JsonPropertyName("batch_size"), Setting("Examples per step; a batch larger than the dataset is clamped to the dataset size (with a note).", Min = 1, Max = 1_000_000)]
    public int BatchSize { get; init; } = 16;

    [JsonPropertyName("learning_rate"), Setting("Peak learning rate (AdamW).", Min = 1e-8, Max = 1)]
    public double LearningRate { get; init; } = 1e-3;

    [JsonPropertyName("warmup_steps"), Setting("Linear warm-up steps (default: min(100, steps / 10)).", Min = 0, Max = 10_000_000)]
    public int? WarmupSteps { get; init; }

    [JsonPropertyName("learning_rate_schedule"), Setting("After warm-up: constant or cosine (decays to 0 at the last step).")]
    public LearningRateSchedule LearningRateSchedule { get; init; } = TrainingRecipe.LearningRateSchedule;

    /// <remarks>Averaging smooths the step-to-step noise of a short CPU run; 0.999 suits runs of a few thousand steps.</remarks>
    [JsonPropertyName("ema"), Setting("EMA decay of the weights (e.g. 0.999; the exported model carries the average); off when omitted.", Min = 0, Max = 0.99999)]
    public double? Ema { get; init; }

    [JsonPropertyName("min_snr_gamma"), Setting("Min-SNR-gamma loss weighting; 0 or null = off (plain MSE on the prediction target).", Min = 0, Max = 1e6)]
    public double? MinSnrGamma { get; init; } = TrainingRecipe.MinSnrGamma;

    [JsonPropertyName("grad_clip"), Setting("Global gradient-norm clip (0 = off).", Min = 0, Max = 1e6)]
    public double GradClip { get; init; } = 1.0;

    /// <remarks>The base model always learns an unconditional branch for classifier-free guidance; reference training has its own prompt dropout.</remarks>
    [JsonPropertyName("prompt_dropout"), Setting("Probability that a training image's prompt is replaced by the empty prompt (classifier-free guidance).", Min = 0, Max = 1)]
    public double PromptDropout { get; init; } = 0.1;

    /// <remarks>
    /// The figure is a small part of each picture and the plain loss spends the model on the background. Measured at 0.25
    /// (docs/development-notes.md): the text steers the figure ~7x more, pose and expression stay at chance, KID is worse.
    /// </remarks>
    [JsonPropertyName("background_weight"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull),
     Setting("Loss weight of the background relative to the figure (its mask); omitted = the plain loss over the whole image.", Min = 0, Max = 1)]
    public double? BackgroundWeight { get; init; }

    /// <remarks>
    /// The base stands in for pretraining (SD's), which did not see the dataset's characters; by default it trains on every
    /// picture, so a base that learns characters by name has seen the unseen split's. This makes the stricter test.
    /// </remarks>
    [JsonPropertyName("skip_unseen"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("Leave the unseen characters' pictures out of base training (default: the base trains on every picture of the dataset).")]
    public bool SkipUnseen { get; init; }

    /// <summary>The dataset records the base trains on (null = all of them).</summary>
    [JsonIgnore] public Func<Data.ImageRecord, bool>? Include => SkipUnseen ? r => r.Split != Data.SplitNames.Unseen : null;

    [JsonPropertyName("checkpoint_every"), Setting("Write a resumable checkpoint every N steps (default: max(50, steps / 10)).", Min = 1, Max = 10_000_000)]
    public int? CheckpointEvery { get; init; }

    [JsonPropertyName("prediction"), Setting("epsilon, v_prediction or sample (x0) for a fresh model (default: the config's).")]
    public PredictionType? Prediction { get; init; }

    [JsonPropertyName("beta_schedule"), Setting("Noise schedule of a fresh model: scaled_linear, linear or squaredcos_cap_v2 (default: the config's).")]
    public BetaSchedule? BetaSchedule { get; init; }

    [JsonPropertyName("zero_snr"), Setting("Rescale the schedule of a fresh model to zero terminal SNR, with trailing DDIM timesteps (v-prediction).")]
    public bool ZeroSnr { get; init; }

    [JsonPropertyName("sigma_data"), Setting("x-prediction input skip (EDM preconditioning) of a fresh model; 0 = none (default: the config's).", Min = 0, Max = 100)]
    public double? SigmaData { get; init; }

    [JsonPropertyName("channels"), Setting("U-Net block channels of a fresh model, comma-separated (e.g. 64,64,64; default: the config's). More widths than the config's levels add levels without attention at the top (highest resolution), fewer drop top levels.")]
    public string? Channels { get; init; }

    [JsonPropertyName("attention_levels"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull),
     Setting("How many of the U-Net's deepest levels have cross-attention to the prompt, in a fresh model (default: the config's; the tiny config has 2 of 3).", Min = 0, Max = 8)]
    public int? AttentionLevels { get; init; }

    /// <remarks>
    /// Without it the text reaches the U-Net only through cross-attention, at the tiny config's two deepest levels. Measured
    /// at 4000 steps in two seeds (docs/development-notes.md): no gain in readability or KID beyond the seed's spread.
    /// </remarks>
    [JsonPropertyName("pooled_text"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault),
     Setting("Add the prompt's pooled embedding to the time embedding of a fresh model, so every ResNet block is steered by the text (default: off, the config's).")]
    public bool PooledText { get; init; }

    [JsonPropertyName("patch_size"), Setting("Pixel-unshuffle patch of a fresh pixel-space model (1 = full resolution; default: the config's).", Min = 1, Max = 16)]
    public int? PatchSize { get; init; }

    [JsonPropertyName("checkpoint"), Setting("A pretrained model folder to use instead of pretraining (e.g. SD1.5 on a GPU machine).",
        SpecOnly = "train-base always trains; it starts from pretrained weights with --init instead")]
    public string? Checkpoint { get; init; }

    [JsonIgnore] public double? EffectiveMinSnrGamma => TrainingRecipe.EffectiveMinSnrGamma(MinSnrGamma);

    /// <summary>The trainer's options for this schedule: the one place warm-up and checkpoint defaults are resolved.</summary>
    public TrainerOptions Trainer(long seed, int? stopAfter = null) => new()
    {
        Steps = Steps, BatchSize = BatchSize, LearningRate = LearningRate, WarmupSteps = WarmupSteps ?? Math.Min(100, Steps / 10),
        LearningRateSchedule = LearningRateSchedule, GradClip = GradClip, EmaDecay = Ema,
        Seed = seed, CheckpointEvery = CheckpointEvery ?? Math.Max(50, Steps / 10), StopAfter = stopAfter,
    };

    /// <summary>The --channels list as widths, or null when it is not 1 to 8 integers in [1, 4096].</summary>
    public int[]? ParsedChannels()
    {
        var parts = (Channels ?? "").Split(',', StringSplitOptions.TrimEntries);
        var widths = parts.Select(c => int.TryParse(c, NumberStyles.None, CultureInfo.InvariantCulture, out var w) ? w : -1).ToArray();
        return widths.Length is >= 1 and <= 8 && widths.All(w => w is >= 1 and <= 4096) ? widths : null;
    }

    /// <summary>The config of a fresh model: the named config with this record's overrides, validated before any layer is allocated.</summary>
    public ModelConfig FreshModelConfig()
    {
        var named = ModelConfigs.Get(Config);
        var config = named with { Schedule = named.Schedule with { PredictionType = Prediction ?? named.Schedule.PredictionType } };
        if (BetaSchedule is { } beta) config = config with { Schedule = config.Schedule with { BetaSchedule = beta } };
        if (SigmaData is double sd) config = config with { Schedule = config.Schedule with { SigmaData = sd } };
        if (ZeroSnr) config = config with { Schedule = config.Schedule with { RescaleBetasZeroSnr = true, TimestepSpacing = TimestepSpacing.Trailing } };
        if (ParsedChannels() is { } widths) config = config with { Unet = WithLevels(config.Unet, widths) };
        if (AttentionLevels is int attention) config = config with { Unet = WithAttentionLevels(config.Unet, attention) };
        if (PooledText) config = config with { Unet = config.Unet with { AdditionEmbedType = PooledTextEmbedding.Type } };
        if (PatchSize is int p)
            config = config with { PatchSize = p, Unet = config.Unet with { InChannels = 3 * p * p, OutChannels = 3 * p * p, SampleSize = config.ImageSize / p } };
        config.Unet.Validate();
        _ = new NoiseSchedule(config.Schedule);
        return config;
    }

    /// <summary>
    /// The U-Net with these block widths. A list longer than the config's adds levels at the top (the highest
    /// resolution) without attention, a shorter one drops top levels, so the attention levels stay the deepest ones:
    /// with patch size 1, 16,32,64,64 puts a 32 px level without attention above the tiny config's three.
    /// </summary>
    static UNetConfig WithLevels(UNetConfig unet, int[] widths)
    {
        int extra = widths.Length - unet.BlockOutChannels.Length;
        string[] Resize(string[] types, string plain, bool topFirst)
        {
            var list = types.ToList();
            if (!topFirst) list.Reverse();
            list = extra >= 0 ? Enumerable.Repeat(plain, extra).Concat(list).ToList() : list.Skip(-extra).ToList();
            if (!topFirst) list.Reverse();
            return list.ToArray();
        }
        return unet with { BlockOutChannels = widths, DownBlockTypes = Resize(unet.DownBlockTypes, "DownBlock2D", topFirst: true), UpBlockTypes = Resize(unet.UpBlockTypes, "UpBlock2D", topFirst: false) };
    }

    /// <summary>The U-Net with cross-attention at its <paramref name="levels"/> deepest levels (all of them when it has fewer).</summary>
    static UNetConfig WithAttentionLevels(UNetConfig unet, int levels)
    {
        int count = unet.BlockOutChannels.Length, plainTop = Math.Max(0, count - levels);
        return unet with
        {
            DownBlockTypes = Enumerable.Range(0, count).Select(i => i < plainTop ? "DownBlock2D" : "CrossAttnDownBlock2D").ToArray(),
            UpBlockTypes = Enumerable.Range(0, count).Select(i => count - 1 - i < plainTop ? "UpBlock2D" : "CrossAttnUpBlock2D").ToArray(),
        };
    }

    /// <summary>Every problem, each naming its field by <paramref name="label"/> (a spec path or a CLI flag).</summary>
    public IReadOnlyList<string> Problems(Func<SettingField, string> label)
    {
        var problems = SettingFields.RangeProblems(this, label).ToList();
        string Label(string property) => label(SettingFields.Field(typeof(BaseTrainingOptions), property));
        if (Channels is not null && ParsedChannels() is null)
            problems.Add($"{Label(nameof(Channels))}: must be 1 to 8 comma-separated widths in [1, 4096], e.g. 64,64,64, not '{Channels}'");
        return problems;
    }
}
