using System.ComponentModel;
using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class TrainBaseCommand(IAnsiConsole console) : Command<TrainBaseCommand.Settings>
{
    /// <summary>The verb's options: the training settings (<see cref="BaseTrainingOptions"/>, one flag per field) and where data and results live.</summary>
    public sealed class Settings : OutputSettings
    {
        [CommandOption("--data <DIR>")]
        [Description("Dataset folder (records.jsonl + images/), e.g. made by `dataset synth`.")]
        public string Data { get; init; } = "";

        [CommandOption("--config <NAME>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.Config))]
        public string? Config { get; init; }

        [CommandOption("--steps <N>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.Steps))]
        public int? Steps { get; init; }

        [CommandOption("--batch-size|--batch <N>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.BatchSize))]
        public int? BatchSize { get; init; }

        [CommandOption("--learning-rate|--lr <LR>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.LearningRate))]
        public double? LearningRate { get; init; }

        [CommandOption("--warmup-steps|--warmup <N>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.WarmupSteps))]
        public int? WarmupSteps { get; init; }

        [CommandOption("--learning-rate-schedule|--lr-schedule <NAME>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.LearningRateSchedule))]
        public string? LearningRateSchedule { get; init; }

        [CommandOption("--ema <DECAY>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.Ema))]
        public double? Ema { get; init; }

        [CommandOption("--min-snr-gamma <GAMMA>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.MinSnrGamma))]
        public double? MinSnrGamma { get; init; }

        [CommandOption("--grad-clip <NORM>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.GradClip))]
        public double? GradClip { get; init; }

        [CommandOption("--prompt-dropout <P>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.PromptDropout))]
        public double? PromptDropout { get; init; }

        [CommandOption("--checkpoint-every <N>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.CheckpointEvery))]
        public int? CheckpointEvery { get; init; }

        [CommandOption("--zero-snr <BOOL>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.ZeroSnr))]
        public bool? ZeroSnr { get; init; }

        [CommandOption("--sigma-data <S>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.SigmaData))]
        public double? SigmaData { get; init; }

        [CommandOption("--patch-size <P>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.PatchSize))]
        public int? PatchSize { get; init; }

        [CommandOption("--prediction <TYPE>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.Prediction))]
        public string? Prediction { get; init; }

        [CommandOption("--beta-schedule <NAME>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.BetaSchedule))]
        public string? BetaSchedule { get; init; }

        [CommandOption("--channels <LIST>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.Channels))]
        public string? Channels { get; init; }

        [CommandOption("--attention-levels <N>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.AttentionLevels))]
        public int? AttentionLevels { get; init; }

        [CommandOption("--background-weight <W>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.BackgroundWeight))]
        public double? BackgroundWeight { get; init; }

        [CommandOption("--pooled-text <BOOL>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.PooledText))]
        public bool? PooledText { get; init; }

        [CommandOption("--skip-unseen <BOOL>"), SettingHelp(typeof(BaseTrainingOptions), nameof(BaseTrainingOptions.SkipUnseen))]
        public bool? SkipUnseen { get; init; }

        [CommandOption("--stop-after <N>")]
        [Description("Stop with a checkpoint after N steps (resume later with --resume).")]
        public int? StopAfter { get; init; }

        [CommandOption("--resume")]
        [Description("Continue from OUT/checkpoint.")]
        public bool Resume { get; init; }

        [CommandOption("--tokenizer <DIR>")]
        [Description("SD tokenizer folder for CLIP-tokenizer configs.")]
        public string? Tokenizer { get; init; }

        [CommandOption("--init <PATH>")]
        [Description("Start from pretrained weights (diffusers folder or single-file checkpoint) instead of a fresh --config model.")]
        public string? Init { get; init; }

        [CommandOption("--log-every <N>")]
        [DefaultValue(50)]
        public int LogEvery { get; init; } = 50;

        /// <summary>The training settings these options give (record defaults for every option not given).</summary>
        public BaseTrainingOptions Training() => SettingsBinder.Bind<BaseTrainingOptions>(this);

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
            var training = SettingsBinder.Bind<BaseTrainingOptions>(this, out var wordProblems);
            var problems = wordProblems.Concat(training.Problems(f => f.Flag)).ToList();
            return problems.Count > 0 ? SettingsBinder.Result(problems) : base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var output = OutputFolderConsole.Open(console, settings.Out, settings.Resume, settings.Overwrite);
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var device = TorchRuntime.ResolveDevice(settings.Device);
        using var pretrained = settings.Init is null ? null
            : File.Exists(settings.Init) ? ModelStore.LoadSingleFile(settings.Init, tokenizerDir: settings.Tokenizer, device: device)
            : ModelStore.LoadDiffusers(settings.Init, device);
        var training = settings.Training();
        var config = pretrained?.Config ?? training.FreshModelConfig();
        var source = new DatasetFolderSource(settings.Data, config.ImageSize, include: training.Include);
        console.MarkupLine($"dataset {Markup.Escape(settings.Data)}: {source.Count} images at {config.ImageSize} px" +
                           (source.Skipped.Count > 0 ? $", [yellow]{source.Skipped.Count} skipped[/]" : ""));
        foreach (var s in source.Skipped.Take(10)) console.MarkupLine($"  [yellow]skipped[/] {Markup.Escape(s.Path)}: {Markup.Escape(s.Reason)}");
        using var fresh = pretrained is null ? BaseModelFactory.Create(config, source, settings.Seed, settings.Tokenizer, device) : null;
        var model = pretrained ?? fresh!;
        var task = new TextToImageTask(model, source, training.PromptDropout, minSnrGamma: training.EffectiveMinSnrGamma, backgroundWeight: training.BackgroundWeight);
        var options = training.Trainer(settings.Seed, settings.StopAfter);
        if (options.BatchNote(task.ExampleCount) is { } batchNote) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(batchNote)}");
        console.MarkupLine($"model {Markup.Escape(model.Config.Name)}: U-Net {ModelInfo.CountParameters(model.Unet):N0} + text encoder {ModelInfo.CountParameters(model.TextEncoder):N0} parameters, " +
                           $"{model.Tokenizer.VocabSize} tokens; seed {settings.Seed}, batch {options.BatchSize}, lr {options.LearningRate}, {settings.Threads} threads");
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            if ((p.Step + 1) % Math.Max(1, settings.LogEvery) == 0 || p.Step + 1 == p.TotalSteps)
                console.MarkupLine($"step {p.Step + 1}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  grad {p.GradNorm:F3}  {p.StepsPerSecond:F2} steps/s  data wait {1000 * p.DataWaitSeconds:F1} ms");
        });
        using var interrupt = new InterruptSignal(cancellationToken);
        var result = new DiffusionTrainer(task, options).Run(output.WorkingPath, settings.Resume, progress, interrupt.Token);
        if (result.RecomputedNote is { } recomputed) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(recomputed)}");
        if (result.Finished) output.Commit();
        else if (output.Staged) console.MarkupLine($"the earlier run in {Markup.Escape(output.Path)} is untouched; this run's checkpoint is in {Markup.Escape(output.WorkingPath)} (continue it with --out {Markup.Escape(output.WorkingPath)} --resume)");
        console.MarkupLine(result.Finished
            ? $"[green]done[/]: {result.StepsDone} steps at {result.StepsPerSecond:F2} steps/s (each batch split across {result.Shards} thread(s); data wait {1000 * result.DataWaitSeconds / Math.Max(1, result.StepsDone):F2} ms/step), model in {Markup.Escape(Path.Combine(settings.Out, "model"))}, checkpoint in {Markup.Escape(Path.Combine(settings.Out, DiffusionTrainer.CheckpointFolder))}"
            : $"[yellow]stopped[/] after step {result.StepsDone}; resume with --resume (checkpoint {Markup.Escape(result.CheckpointFolder)})");
        return result.Finished || settings.StopAfter is not null ? ExitCodes.Ok : ExitCodes.Interrupted;
    }
}
