using System.ComponentModel;
using System.Text.Json;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class TrainCommand(IAnsiConsole console) : Command<TrainCommand.Settings>
{
    /// <summary>The verb's options: the training settings (<see cref="ReferenceTrainingOptions"/>, one flag per field) and where data and results live.</summary>
    public sealed class Settings : OutputSettings
    {
        [CommandOption("--manifest <FILE>")]
        [Description("Manifest (JSON Lines of training examples); its dataset folder is two levels up unless --data says otherwise. Default: DATA/manifests/scheme_SCHEME.jsonl.")]
        public string? Manifest { get; init; }

        [CommandOption("--data <DIR>")]
        [Description("Dataset folder (records.jsonl, images/, crops/, manifests/).")]
        public string? Data { get; init; }

        [CommandOption("--scheme <a|b>")]
        [Description("Reference scheme: b (other images, leakage-free) or a (crops of the target, leakage study only).")]
        [DefaultValue("b")]
        public string Scheme { get; init; } = "b";

        [CommandOption("--model <KIND>")]
        [Description("retrinet, controlnet, ipadapter or text-only.")]
        [DefaultValue("retrinet")]
        public string Model { get; init; } = "retrinet";

        [CommandOption("--base <DIR>")]
        [Description("Base text-to-image model: a diffusers folder (e.g. train-base's OUT/model, or SD1.5).")]
        public string Base { get; init; } = "";

        [CommandOption("--steps <N>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.Steps))]
        public int? Steps { get; init; }

        [CommandOption("--batch-size|--batch <N>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.BatchSize))]
        public int? BatchSize { get; init; }

        [CommandOption("--learning-rate|--lr <LR>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.LearningRate))]
        public double? LearningRate { get; init; }

        [CommandOption("--warmup-steps|--warmup <N>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.WarmupSteps))]
        public int? WarmupSteps { get; init; }

        [CommandOption("--learning-rate-schedule|--lr-schedule <NAME>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.LearningRateSchedule))]
        public string? LearningRateSchedule { get; init; }

        [CommandOption("--checkpoint-every <N>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.CheckpointEvery))]
        public int? CheckpointEvery { get; init; }

        [CommandOption("--grad-clip <NORM>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.GradClip))]
        public double? GradClip { get; init; }

        [CommandOption("--prompt-dropout <P>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.PromptDropout))]
        public double? PromptDropout { get; init; }

        [CommandOption("--reference-dropout <P>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.ReferenceDropout))]
        public double? ReferenceDropout { get; init; }

        [CommandOption("--reference-dropout-each <P>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.ReferenceDropoutEach))]
        public double? ReferenceDropoutEach { get; init; }

        [CommandOption("--masked-loss <BOOL>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.MaskedLoss))]
        public bool? MaskedLoss { get; init; }

        [CommandOption("--background-weight <W>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.BackgroundWeight))]
        public double? BackgroundWeight { get; init; }

        [CommandOption("--decoder-lr-scale <S>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.DecoderLearningRateScale))]
        public double? DecoderLearningRateScale { get; init; }

        [CommandOption("--prompt-view <VIEW>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.PromptView))]
        public string? PromptView { get; init; }

        [CommandOption("--min-snr-gamma <GAMMA>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.MinSnrGamma))]
        public double? MinSnrGamma { get; init; }

        [CommandOption("--reference-augmentation <A>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.ReferenceAugmentation))]
        public double? ReferenceAugmentation { get; init; }

        [CommandOption("--colour-shift <P>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.ColourShift))]
        public double? ColourShift { get; init; }

        [CommandOption("--reference-positions <BOOL>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.ReferencePositions))]
        public bool? ReferencePositions { get; init; }

        [CommandOption("--ip-scale <S>"), SettingHelp(typeof(ReferenceTrainingOptions), nameof(ReferenceTrainingOptions.IpAdapterScale))]
        public double? IpAdapterScale { get; init; }

        [CommandOption("--no-mask")]
        [Description("Shorthand for --masked-loss false (plain loss over the whole image).")]
        public bool NoMask { get; init; }

        [CommandOption("--stop-after <N>")]
        public int? StopAfter { get; init; }

        [CommandOption("--resume")]
        [Description("Continue from OUT/checkpoint (bit-identical to an uninterrupted run).")]
        public bool Resume { get; init; }

        [CommandOption("--log-every <N>")]
        [DefaultValue(50)]
        public int LogEvery { get; init; } = 50;

        /// <summary>The training settings these options give (record defaults for every option not given).</summary>
        public ReferenceTrainingOptions Training() =>
            SettingsBinder.Bind<ReferenceTrainingOptions>(this) is var training && NoMask ? training with { MaskedLoss = false } : training;

        public override ValidationResult Validate()
        {
            if (Manifest is null && Data is null) return ValidationResult.Error("give --manifest FILE or --data DIR");
            if (string.IsNullOrWhiteSpace(Base)) return ValidationResult.Error("--base is required (a diffusers folder, e.g. from `retribooru train-base`)");
            var training = SettingsBinder.Bind<ReferenceTrainingOptions>(this, out var wordProblems);
            var problems = wordProblems.Concat(training.Problems(f => f.Flag)).ToList();
            if (!SettingsBinder.TryWord<ModelKind>("--model", Model, out _, out var modelProblem)) problems.Add(modelProblem);
            if (!SettingsBinder.TryWord<ReferenceScheme>("--scheme", Scheme, out _, out var schemeProblem)) problems.Add(schemeProblem);
            return problems.Count > 0 ? SettingsBinder.Result(problems) : base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        using var output = OutputFolderConsole.Open(console, settings.Out, settings.Resume, settings.Overwrite);
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var device = TorchRuntime.ResolveDevice(settings.Device);
        var manifest = settings.Manifest ?? Path.Combine(settings.Data!, DatasetLayout.ManifestPath(Words.Parse<ReferenceScheme>(settings.Scheme)));
        var dataDir = settings.Data ?? Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(manifest)))!;
        var examples = ManifestReader.Read(manifest).Where(e => e.Split == SplitNames.Train).ToList();
        using var model = ModelStore.LoadDiffusers(settings.Base, device);
        var trainingOptions = settings.Training();
        var branch = ReferenceModels.Create(Words.Parse<ModelKind>(settings.Model), model, trainingOptions.RetriNet(), ipAdapterScale: trainingOptions.IpAdapterScale, seed: Seeding.DeriveLong(settings.Seed, "init"));
        using var data = new ReferenceDataset(dataDir, examples, model.Config.ImageSize);
        console.MarkupLine($"{data.Count} training examples from {Markup.Escape(manifest)}" + (data.Skipped.Count > 0 ? $", [yellow]{data.Skipped.Count} skipped[/]" : ""));
        foreach (var s in data.Skipped.Take(10)) console.MarkupLine($"  [yellow]skipped[/] {Markup.Escape(s.Path)}: {Markup.Escape(s.Reason)}");
        using var task = new ReferenceTrainingTask(model, branch, data, trainingOptions);
        var options = trainingOptions.Trainer(settings.Seed, settings.StopAfter);
        Directory.CreateDirectory(output.WorkingPath);
        AtomicFile.WriteAllText(Path.Combine(output.WorkingPath, "train_config.json"), JsonSerializer.Serialize(new
        {
            model = settings.Model, scheme = settings.Scheme, manifest = Path.GetFullPath(manifest), data = Path.GetFullPath(dataDir),
            @base = Path.GetFullPath(settings.Base), seed = settings.Seed, trainer = options, training = trainingOptions,
            trainable_parameters = task.TrainableParameters.Sum(p => p.Value.numel()),
            provenance = Provenance.Capture(device: device.ToString()),
        }, WorkbenchJson.Pretty) + "\n");
        console.MarkupLine($"model {settings.Model}: {task.TrainableParameters.Sum(p => p.Value.numel()):N0} trainable parameters; seed {settings.Seed}, batch {options.BatchSize}, {settings.Threads} threads");
        if (options.BatchNote(task.ExampleCount) is { } batchNote) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(batchNote)}");
        using var interrupt = new InterruptSignal(cancellationToken);
        var result = AnsiProgress.Train(console, task, options, output.WorkingPath, settings.Resume, settings.LogEvery, interrupt.Token);
        if (result.RecomputedNote is { } recomputed) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(recomputed)}");
        if (result.Finished) output.Commit();
        else if (output.Staged) console.MarkupLine($"the earlier run in {Markup.Escape(output.Path)} is untouched; this run's checkpoint is in {Markup.Escape(output.WorkingPath)} (continue it with --out {Markup.Escape(output.WorkingPath)} --resume)");
        console.MarkupLine(result.Finished
            ? $"[green]done[/]: {result.StepsDone} steps at {result.StepsPerSecond:F2} steps/s (each batch split across {result.Shards} thread(s); data wait {1000 * result.DataWaitSeconds / Math.Max(1, result.StepsDone):F2} ms/step), model in {Markup.Escape(Path.Combine(settings.Out, "model"))}"
            : $"[yellow]stopped[/] after step {result.StepsDone}; resume with --resume");
        return result.Finished || settings.StopAfter is not null ? ExitCodes.Ok : ExitCodes.Interrupted;
    }
}

/// <summary>Runs the trainer with a Spectre progress bar (steps, loss, ETA) and periodic log lines.</summary>
public static class AnsiProgress
{
    public static TrainingResult Train(IAnsiConsole console, ITrainingTask task, TrainerOptions options, string outDir, bool resume, int logEvery, CancellationToken cancellation)
    {
        TrainingResult? result = null;
        if (!console.Profile.Capabilities.Interactive)
        {
            // Logs and CI: plain lines, no redrawn bar.
            var lines = new SyncProgress<TrainingProgress>(p =>
            {
                if ((p.Step + 1) % Math.Max(1, logEvery) == 0 || p.Step + 1 == p.TotalSteps)
                    console.MarkupLine($"step {p.Step + 1}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  grad {p.GradNorm:F3}  {p.StepsPerSecond:F2} steps/s  data wait {1000 * p.DataWaitSeconds:F1} ms");
            });
            return new DiffusionTrainer(task, options).Run(outDir, resume, lines, cancellation);
        }
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var bar = ctx.AddTask("training", maxValue: options.Steps);
                var progress = new SyncProgress<TrainingProgress>(p =>
                {
                    bar.Value = p.Step + 1;
                    bar.Description = $"loss {p.Loss:F4}, {p.StepsPerSecond:F2} steps/s";
                    if ((p.Step + 1) % Math.Max(1, logEvery) == 0)
                        console.MarkupLine($"step {p.Step + 1}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  grad {p.GradNorm:F3}");
                });
                result = new DiffusionTrainer(task, options).Run(outDir, resume, progress, cancellation);
            });
        return result!;
    }
}
