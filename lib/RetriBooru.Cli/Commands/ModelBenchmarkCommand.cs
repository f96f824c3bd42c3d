using RetriBooru.Settings;
using System.ComponentModel;
using System.Diagnostics;
using RetriBooru.Diffusion;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Prints training throughput, sampling time and memory of a config on this machine (figures, not a test).</summary>
public sealed class ModelBenchmarkCommand(IAnsiConsole console) : Command<ModelBenchmarkCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <NAME>")]
        [DefaultValue("tiny")]
        public string Config { get; init; } = "tiny";

        [CommandOption("--batch <N>")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        [CommandOption("--steps <N>")]
        [Description("Training steps to run.")]
        [DefaultValue(100)]
        public int Steps { get; init; } = 100;

        [CommandOption("--rss-at <STEPS>")]
        [Description("Comma-separated steps at which to print the resident set size.")]
        [DefaultValue("10,100,1000")]
        public string RssAt { get; init; } = "10,100,1000";

        [CommandOption("--sample-count <N>")]
        [DefaultValue(4)]
        public int SampleCount { get; init; } = 4;

        [CommandOption("--sample-steps <N>")]
        [DefaultValue(50)]
        public int SampleSteps { get; init; } = 50;

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
        public int Threads { get; init; } = TorchRuntime.DefaultThreads;

        [CommandOption("--save-samples <DIR>")]
        [Description("Also write the sampled images (prompt: red background, blue square) as PNGs.")]
        public string? SaveSamples { get; init; }

        [CommandOption("--prediction <TYPE>")]
        [Description("epsilon, v_prediction or sample (default: the config's).")]
        public string? Prediction { get; init; }

        public override ValidationResult Validate() =>
            Prediction is not null && !SettingsBinder.TryWord<PredictionType>("--prediction", Prediction, out _, out var problem)
                ? ValidationResult.Error(problem) : ValidationResult.Success();

        [CommandOption("--keep <DIR>")]
        [Description("Keep the training output (loss.jsonl, checkpoint/, model/) in DIR instead of a deleted temp folder.")]
        public string? Keep { get; init; }

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }
    }

    static double RssMiB()
    {
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64 / 1048576.0;
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var named = ModelConfigs.Get(settings.Config);
        var config = settings.Prediction is null ? named : named with { Schedule = named.Schedule with { PredictionType = Words.Parse<PredictionType>(settings.Prediction) } };
        var data = InMemoryImagePromptDataset.Synthetic(256, config.ImageSize, settings.Seed);
        using var model = BaseModelFactory.Create(config, data, settings.Seed);
        var task = new TextToImageTask(model, data);
        var checkpoints = settings.RssAt.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToHashSet();
        console.MarkupLine($"benchmark: config {config.Name}, batch {settings.Batch}, {settings.Steps} steps, {settings.Threads} threads, seed {settings.Seed}, " +
                           $"U-Net {ModelInfo.CountParameters(model.Unet):N0} params; RSS at start {RssMiB():F0} MiB");
        var rssLines = new List<string>();
        var clock = Stopwatch.StartNew();
        double warmSeconds = 0;
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            long done = p.Step + 1;
            if (done == 1) warmSeconds = clock.Elapsed.TotalSeconds;
            if (checkpoints.Contains(done))
            {
                var line = $"step {done,5}: RSS {RssMiB():F0} MiB, loss {p.Loss:F4}, {p.StepsPerSecond:F2} steps/s so far";
                rssLines.Add(line);
                console.MarkupLine(line);
            }
        });
        var outDir = settings.Keep ?? Path.Combine(Path.GetTempPath(), "retribooru-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var options = new TrainerOptions { Steps = settings.Steps, BatchSize = settings.Batch, LearningRate = 1e-3, WarmupSteps = 100, Seed = settings.Seed };
            var result = new DiffusionTrainer(task, options).Run(outDir, progress: progress, cancellation: cancellationToken);
            double total = clock.Elapsed.TotalSeconds;
            double steadyRate = (result.StepsDone - 1) / Math.Max(total - warmSeconds, 1e-9);
            console.MarkupLine($"[bold]training[/]: {result.StepsDone} steps at batch {settings.Batch}: {steadyRate:F2} steps/s after the first step " +
                               $"({steadyRate * settings.Batch:F1} images/s), {total:F1} s total including checkpoint writes; batch split across {result.Shards} thread(s)");
            // Model-FLOP utilisation: the step's FLOPs counted from the module graph over the matmul rate at this thread count.
            var flops = StepBenchmark.CountStepFlops(task, [model.Unet, model.TextEncoder], new StepBenchmark.Options { BatchSize = settings.Batch, Seed = settings.Seed });
            double peak = TorchRuntime.MeasureMatmulGflops();
            double achieved = flops.TrainingStep / 1e9 * steadyRate;
            console.MarkupLine($"[bold]MFU[/]: {flops.TrainingStep / 1e9:F2} GFLOP per step (forward + backward), {achieved:F1} GFLOP/s achieved, " +
                               $"fp32 matmul {peak:F1} GFLOP/s on {settings.Threads} thread(s): MFU {achieved / peak:P0}");

            var sampleClock = Stopwatch.StartNew();
            using var images = TextToImage.Generate(model, Enumerable.Repeat("red_background, blue_square", settings.SampleCount).ToList(),
                new SamplingOptions { Steps = settings.SampleSteps, GuidanceScale = 3.0, Seed = settings.Seed });
            if (settings.SaveSamples is not null)
            {
                Directory.CreateDirectory(settings.SaveSamples);
                for (int i = 0; i < settings.SampleCount; i++)
                {
                    using var image = images[i];
                    Imaging.ImageTensor.SavePng(image, Path.Combine(settings.SaveSamples, $"bench-sample-{i:D2}.png"));
                }
            }
            console.MarkupLine($"[bold]sampling[/]: {settings.SampleCount} images, {settings.SampleSteps} DDIM steps with guidance (batch {2 * settings.SampleCount}): {sampleClock.Elapsed.TotalSeconds:F2} s");
        }
        finally
        {
            if (settings.Keep is null && Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        }
        using var self = Process.GetCurrentProcess();
        console.MarkupLine($"[bold]memory[/]: RSS now {RssMiB():F0} MiB, peak {self.PeakWorkingSet64 / 1048576.0:F0} MiB");
        return ExitCodes.Ok;
    }
}
