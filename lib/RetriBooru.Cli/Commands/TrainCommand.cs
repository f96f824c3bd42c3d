using System.ComponentModel;
using System.Text.Json;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

public sealed class TrainCommand(IAnsiConsole console) : Command<TrainCommand.Settings>
{
    public sealed class Settings : CommandSettings
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

        [CommandOption("--steps <N>")]
        [DefaultValue(1000)]
        public int Steps { get; init; } = 1000;

        [CommandOption("--batch <N>")]
        [Description("Examples per step; a batch larger than the dataset is clamped to the dataset size (with a note).")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        [CommandOption("--lr <LR>")]
        [DefaultValue(5e-4)]
        public double LearningRate { get; init; } = 5e-4;

        [CommandOption("--warmup <N>")]
        [DefaultValue(50)]
        public int Warmup { get; init; } = 50;

        [CommandOption("--prompt-dropout <P>")]
        [DefaultValue(0.1)]
        public double PromptDropout { get; init; } = 0.1;

        [CommandOption("--reference-dropout <P>")]
        [DefaultValue(0.1)]
        public double ReferenceDropout { get; init; } = 0.1;

        [CommandOption("--prompt-view <VIEW>")]
        [Description("full (the target's whole tag prompt, as the paper) or context (character, hair, eye and clothing tags removed: identity only from the references).")]
        [DefaultValue("full")]
        public string PromptView { get; init; } = "full";

        [CommandOption("--background-weight <W>")]
        [Description("Loss weight of the background under the masked loss (0 = only the figure counts, as the paper).")]
        [DefaultValue(0.0)]
        public double BackgroundWeight { get; init; }

        [CommandOption("--decoder-lr-scale <S>")]
        [Description("Learning-rate multiplier of the base U-Net's decoder (the new branch keeps --lr).")]
        [DefaultValue(1.0)]
        public double DecoderLearningRateScale { get; init; } = 1.0;

        [CommandOption("--min-snr-gamma <GAMMA>")]
        [Description("Min-SNR-gamma loss weighting; 0 = off (plain MSE on the prediction target).")]
        [DefaultValue(RetriBooru.Diffusion.TrainingRecipe.MinSnrGamma)]
        public double MinSnrGamma { get; init; } = RetriBooru.Diffusion.TrainingRecipe.MinSnrGamma;

        [CommandOption("--no-mask")]
        [Description("Plain (unmasked) loss over the whole image.")]
        public bool NoMask { get; init; }

        [CommandOption("--ip-scale <S>")]
        [DefaultValue(1.0)]
        public double IpScale { get; init; } = 1.0;

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--out <DIR>")]
        [Description("Output: train_config.json, loss.jsonl, checkpoint/, model/ (diffusers folder + branch.safetensors).")]
        public string Out { get; init; } = "";

        [CommandOption("--checkpoint-every <N>")]
        [DefaultValue(100)]
        public int CheckpointEvery { get; init; } = 100;

        [CommandOption("--stop-after <N>")]
        public int? StopAfter { get; init; }

        [CommandOption("--resume")]
        [Description("Continue from OUT/checkpoint (bit-identical to an uninterrupted run).")]
        public bool Resume { get; init; }

        [CommandOption("--overwrite")]
        [Description("Replace the earlier run in OUT: the new one is trained in OUT.new and swapped in when it finishes.")]
        public bool Overwrite { get; init; }

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
            if (Manifest is null && Data is null) return ValidationResult.Error("give --manifest FILE or --data DIR");
            if (string.IsNullOrWhiteSpace(Base)) return ValidationResult.Error("--base is required (a diffusers folder, e.g. from `retribooru train-base`)");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out is required");
            if (!ReferenceModels.Kinds.Contains(Model)) return ValidationResult.Error($"--model must be one of {string.Join(", ", ReferenceModels.Kinds)}");
            if (Scheme is not ("a" or "b")) return ValidationResult.Error("--scheme must be a or b");
            if (!RetriBooru.Data.PromptViews.All.Contains(PromptView)) return ValidationResult.Error("--prompt-view must be full or context");
            if (!double.IsFinite(MinSnrGamma) || MinSnrGamma < 0) return ValidationResult.Error($"--min-snr-gamma must be a finite number >= 0 (0 = off), not {MinSnrGamma}");
            if (BackgroundWeight is < 0 or > 1) return ValidationResult.Error("--background-weight must be in [0, 1]");
            if (Steps < 1 || Batch < 1) return ValidationResult.Error("--steps and --batch must be at least 1");
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var output = OutputFolderConsole.Open(console, settings.Out, settings.Resume, settings.Overwrite);
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var device = TorchRuntime.ResolveDevice(settings.Device);
        var manifest = settings.Manifest ?? Path.Combine(settings.Data!, DatasetLayout.ManifestPath(settings.Scheme));
        var dataDir = settings.Data ?? Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(manifest)))!;
        var examples = ManifestReader.Read(manifest).Where(e => e.Split == SplitNames.Train).ToList();
        using var model = ModelStore.LoadDiffusers(settings.Base, device);
        var branch = ReferenceModels.Create(settings.Model, model, ipAdapterScale: settings.IpScale, seed: Seeding.DeriveLong(settings.Seed, "init"));
        using var data = new ReferenceDataset(dataDir, examples, model.Config.ImageSize);
        console.MarkupLine($"{data.Count} training examples from {Markup.Escape(manifest)}" + (data.Skipped.Count > 0 ? $", [yellow]{data.Skipped.Count} skipped[/]" : ""));
        foreach (var s in data.Skipped.Take(10)) console.MarkupLine($"  [yellow]skipped[/] {Markup.Escape(s.Path)}: {Markup.Escape(s.Reason)}");
        var trainingOptions = new ReferenceTrainingOptions { PromptDropout = settings.PromptDropout, ReferenceDropout = settings.ReferenceDropout, MaskedLoss = !settings.NoMask, PromptView = settings.PromptView, BackgroundWeight = settings.BackgroundWeight, DecoderLearningRateScale = settings.DecoderLearningRateScale, MinSnrGamma = settings.MinSnrGamma > 0 ? settings.MinSnrGamma : null };
        using var task = new ReferenceTrainingTask(model, branch, data, trainingOptions);
        var options = new TrainerOptions
        {
            Steps = settings.Steps, BatchSize = settings.Batch, LearningRate = settings.LearningRate, WarmupSteps = settings.Warmup,
            Seed = settings.Seed, CheckpointEvery = settings.CheckpointEvery, StopAfter = settings.StopAfter,
        };
        Directory.CreateDirectory(output.WorkingPath);
        AtomicFile.WriteAllText(Path.Combine(output.WorkingPath, "train_config.json"), JsonSerializer.Serialize(new
        {
            model = settings.Model, scheme = settings.Scheme, manifest = Path.GetFullPath(manifest), data = Path.GetFullPath(dataDir),
            @base = Path.GetFullPath(settings.Base), seed = settings.Seed, trainer = options, training = trainingOptions,
            trainable_parameters = task.TrainableParameters.Sum(p => p.Value.numel()),
            provenance = Provenance.Capture(device: device.ToString()),
        }, WorkbenchJson.Pretty) + "\n");
        console.MarkupLine($"model {settings.Model}: {task.TrainableParameters.Sum(p => p.Value.numel()):N0} trainable parameters; seed {settings.Seed}, batch {settings.Batch}, {settings.Threads} threads");
        if (options.BatchNote(task.ExampleCount) is { } batchNote) console.MarkupLine($"[yellow]note[/]: {Markup.Escape(batchNote)}");
        using var interrupt = new InterruptSignal(cancellationToken);
        var result = AnsiProgress.Train(console, task, options, output.WorkingPath, settings.Resume, settings.LogEvery, interrupt.Token);
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
