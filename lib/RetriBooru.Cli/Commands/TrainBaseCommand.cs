using System.ComponentModel;
using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class TrainBaseCommand(IAnsiConsole console) : Command<TrainBaseCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--data <DIR>")]
        [Description("Dataset folder (records.jsonl + images/), e.g. made by `dataset synth`.")]
        public string Data { get; init; } = "";

        [CommandOption("--config <NAME>")]
        [Description("Model config (tiny; sd15 needs --tokenizer and a GPU).")]
        [DefaultValue("tiny")]
        public string Config { get; init; } = "tiny";

        [CommandOption("--steps <N>")]
        [DefaultValue(1000)]
        public int Steps { get; init; } = 1000;

        [CommandOption("--out <DIR>")]
        [Description("Output folder: loss.jsonl, checkpoint/, model/ (diffusers layout).")]
        public string Out { get; init; } = "";

        [CommandOption("--batch <N>")]
        [Description("Examples per step; a batch larger than the dataset is clamped to the dataset size (with a note).")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        [CommandOption("--lr <LR>")]
        [DefaultValue(1e-3)]
        public double LearningRate { get; init; } = 1e-3;

        [CommandOption("--warmup <N>")]
        [DefaultValue(100)]
        public int Warmup { get; init; } = 100;

        [CommandOption("--grad-clip <NORM>")]
        [DefaultValue(1.0)]
        public double GradClip { get; init; } = 1.0;

        [CommandOption("--ema <DECAY>")]
        [Description("EMA decay (e.g. 0.999); off when omitted.")]
        public double? Ema { get; init; }

        [CommandOption("--prompt-dropout <P>")]
        [DefaultValue(0.1)]
        public double PromptDropout { get; init; } = 0.1;

        [CommandOption("--prediction <TYPE>")]
        [Description("epsilon, v_prediction or sample (x0) for fresh --config models (default: the config's; tiny uses v_prediction).")]
        public string? Prediction { get; init; }

        [CommandOption("--lr-schedule <NAME>")]
        [Description("After warm-up: constant or cosine (decays to 0 at the last step).")]
        [DefaultValue(TrainingRecipe.LearningRateSchedule)]
        public string LrSchedule { get; init; } = TrainingRecipe.LearningRateSchedule;

        [CommandOption("--min-snr-gamma <GAMMA>")]
        [Description("Min-SNR-gamma loss weighting; 0 = off (plain MSE on the prediction target).")]
        [DefaultValue(TrainingRecipe.MinSnrGamma)]
        public double MinSnrGamma { get; init; } = TrainingRecipe.MinSnrGamma;

        [CommandOption("--beta-schedule <NAME>")]
        [Description("Noise schedule of a fresh --config model: scaled_linear, linear or squaredcos_cap_v2 (default: the config's).")]
        public string? BetaSchedule { get; init; }

        [CommandOption("--zero-snr")]
        [Description("Rescale the schedule to zero terminal SNR, with trailing DDIM timesteps (fresh --config models, v-prediction).")]
        public bool ZeroSnr { get; init; }

        [CommandOption("--sigma-data <S>")]
        [Description("x-prediction input skip (EDM preconditioning) of a fresh --config model; 0 = none (default: the config's).")]
        public double? SigmaData { get; init; }

        [CommandOption("--channels <LIST>")]
        [Description("U-Net block channels of a fresh --config model, comma-separated (e.g. 64,64,64; default: the config's).")]
        public string? Channels { get; init; }

        /// <summary>The --channels list as widths, or null when it is not 1 to 8 integers in [1, 4096].</summary>
        public int[]? ParsedChannels()
        {
            var parts = (Channels ?? "").Split(',', StringSplitOptions.TrimEntries);
            var widths = parts.Select(c => int.TryParse(c, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var w) ? w : -1).ToArray();
            return widths.Length is >= 1 and <= 8 && widths.All(w => w is >= 1 and <= 4096) ? widths : null;
        }

        [CommandOption("--patch-size <P>")]
        [Description("Pixel-unshuffle patch of a fresh pixel-space model (1 = full resolution; default: the config's).")]
        public int? PatchSize { get; init; }

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--checkpoint-every <N>")]
        [DefaultValue(0)]
        public int CheckpointEvery { get; init; }

        [CommandOption("--stop-after <N>")]
        [Description("Stop with a checkpoint after N steps (resume later with --resume).")]
        public int? StopAfter { get; init; }

        [CommandOption("--resume")]
        [Description("Continue from OUT/checkpoint.")]
        public bool Resume { get; init; }

        [CommandOption("--overwrite")]
        [Description("Replace the earlier run in OUT: the new one is trained in OUT.new and swapped in when it finishes.")]
        public bool Overwrite { get; init; }

        [CommandOption("--tokenizer <DIR>")]
        [Description("SD tokenizer folder for CLIP-tokenizer configs.")]
        public string? Tokenizer { get; init; }

        [CommandOption("--init <PATH>")]
        [Description("Start from pretrained weights (diffusers folder or single-file checkpoint) instead of a fresh --config model.")]
        public string? Init { get; init; }

        [CommandOption("--device <DEVICE>")]
        [DefaultValue("cpu")]
        public string Device { get; init; } = "cpu";

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
        public int Threads { get; init; } = TorchRuntime.DefaultThreads;

        [CommandOption("--log-every <N>")]
        [DefaultValue(50)]
        public int LogEvery { get; init; } = 50;

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out is required");
            if (Steps < 1) return ValidationResult.Error("--steps must be at least 1");
            if (Batch < 1) return ValidationResult.Error("--batch must be at least 1");
            if (!double.IsFinite(LearningRate) || LearningRate <= 0) return ValidationResult.Error($"--lr must be a positive finite number, not {LearningRate}");
            if (!double.IsFinite(MinSnrGamma) || MinSnrGamma < 0) return ValidationResult.Error($"--min-snr-gamma must be a finite number >= 0 (0 = off), not {MinSnrGamma}");
            if (!TrainerOptions.LearningRateSchedules.Contains(LrSchedule)) return ValidationResult.Error($"--lr-schedule must be one of {string.Join(", ", TrainerOptions.LearningRateSchedules)}, not '{LrSchedule}'");
            if (PatchSize is int p && p is < 1 or > 16) return ValidationResult.Error($"--patch-size must be in [1, 16], not {p}");
            if (Channels is not null && ParsedChannels() is null) return ValidationResult.Error($"--channels must be 1 to 8 comma-separated widths in [1, 4096], e.g. 64,64,64, not '{Channels}'");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var output = OutputFolderConsole.Open(console, settings.Out, settings.Resume, settings.Overwrite);
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var device = TorchRuntime.ResolveDevice(settings.Device);
        using var pretrained = settings.Init is null ? null
            : File.Exists(settings.Init) ? ModelStore.LoadSingleFile(settings.Init, tokenizerDir: settings.Tokenizer, device: device)
            : ModelStore.LoadDiffusers(settings.Init, device);
        if (settings.Prediction is not null && !NoiseSchedule.PredictionTypes.Contains(settings.Prediction)) throw new ArgumentException($"--prediction must be one of {string.Join(", ", NoiseSchedule.PredictionTypes)}, not '{settings.Prediction}'");
        var named = ModelConfigs.Get(settings.Config);
        var config = pretrained?.Config ?? named with { Schedule = named.Schedule with { PredictionType = settings.Prediction ?? named.Schedule.PredictionType } };
        if (pretrained is null)
        {
            if (settings.BetaSchedule is { } beta) config = config with { Schedule = config.Schedule with { BetaSchedule = beta } };
            if (settings.SigmaData is double sd) config = config with { Schedule = config.Schedule with { SigmaData = sd } };
            if (settings.ZeroSnr) config = config with { Schedule = config.Schedule with { RescaleBetasZeroSnr = true, TimestepSpacing = "trailing" } };
            if (settings.ParsedChannels() is { } widths) config = config with { Unet = config.Unet with { BlockOutChannels = widths } };
            if (settings.PatchSize is int p)
                config = config with { PatchSize = p, Unet = config.Unet with { InChannels = 3 * p * p, OutChannels = 3 * p * p, SampleSize = config.ImageSize / p } };
            config.Unet.Validate();
            _ = new NoiseSchedule(config.Schedule);
        }
        var source = new DatasetFolderSource(settings.Data, config.ImageSize);
        console.MarkupLine($"dataset {Markup.Escape(settings.Data)}: {source.Count} images at {config.ImageSize} px" +
                           (source.Skipped.Count > 0 ? $", [yellow]{source.Skipped.Count} skipped[/]" : ""));
        foreach (var s in source.Skipped.Take(10)) console.MarkupLine($"  [yellow]skipped[/] {Markup.Escape(s.Path)}: {Markup.Escape(s.Reason)}");
        using var fresh = pretrained is null ? BaseModelFactory.Create(config, source, settings.Seed, settings.Tokenizer, device) : null;
        var model = pretrained ?? fresh!;
        var task = new TextToImageTask(model, source, settings.PromptDropout, minSnrGamma: settings.MinSnrGamma > 0 ? settings.MinSnrGamma : null);
        var options = new TrainerOptions
        {
            Steps = settings.Steps, BatchSize = settings.Batch, LearningRate = settings.LearningRate, WarmupSteps = settings.Warmup,
            GradClip = settings.GradClip, EmaDecay = settings.Ema, LearningRateSchedule = settings.LrSchedule, Seed = settings.Seed, CheckpointEvery = settings.CheckpointEvery, StopAfter = settings.StopAfter,
        };
        if (options.BatchNote(task.ExampleCount) is { } batchNote) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(batchNote)}");
        console.MarkupLine($"model {Markup.Escape(model.Config.Name)}: U-Net {ModelInfo.CountParameters(model.Unet):N0} + text encoder {ModelInfo.CountParameters(model.TextEncoder):N0} parameters, " +
                           $"{model.Tokenizer.VocabSize} tokens; seed {settings.Seed}, batch {settings.Batch}, lr {settings.LearningRate}, {settings.Threads} threads");
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            if ((p.Step + 1) % Math.Max(1, settings.LogEvery) == 0 || p.Step + 1 == p.TotalSteps)
                console.MarkupLine($"step {p.Step + 1}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  grad {p.GradNorm:F3}  {p.StepsPerSecond:F2} steps/s  data wait {1000 * p.DataWaitSeconds:F1} ms");
        });
        using var interrupt = new InterruptSignal(cancellationToken);
        var result = new DiffusionTrainer(task, options).Run(output.WorkingPath, settings.Resume, progress, interrupt.Token);
        if (result.Finished) output.Commit();
        else if (output.Staged) console.MarkupLine($"the earlier run in {Markup.Escape(output.Path)} is untouched; this run's checkpoint is in {Markup.Escape(output.WorkingPath)} (continue it with --out {Markup.Escape(output.WorkingPath)} --resume)");
        console.MarkupLine(result.Finished
            ? $"[green]done[/]: {result.StepsDone} steps at {result.StepsPerSecond:F2} steps/s (each batch split across {result.Shards} thread(s); data wait {1000 * result.DataWaitSeconds / Math.Max(1, result.StepsDone):F2} ms/step), model in {Markup.Escape(Path.Combine(settings.Out, "model"))}, checkpoint in {Markup.Escape(Path.Combine(settings.Out, DiffusionTrainer.CheckpointFolder))}"
            : $"[yellow]stopped[/] after step {result.StepsDone}; resume with --resume (checkpoint {Markup.Escape(result.CheckpointFolder)})");
        return result.Finished || settings.StopAfter is not null ? ExitCodes.Ok : ExitCodes.Interrupted;
    }
}
