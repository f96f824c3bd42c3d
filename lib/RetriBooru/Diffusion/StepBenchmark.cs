using System.Diagnostics;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Modeling;
using RetriBooru.Runtime;

namespace RetriBooru.Diffusion;

/// <summary>Figures of one benchmarked training phase.</summary>
/// <param name="Model">"base" (the text-to-image U-Net step) or a reference model kind.</param>
/// <param name="TrainableParameters">Parameters the optimiser updates in this phase.</param>
/// <param name="StepsPerSecond">Steady rate: steps after the first over the time after the first.</param>
/// <param name="FirstStepSeconds">The first step (allocation, kernel selection) on its own.</param>
/// <param name="PeakRssMiB">Largest resident set size seen after any step of the phase.</param>
public sealed record StepBenchmarkPhase(string Model, long TrainableParameters, int Steps, int BatchSize, int References, double StepsPerSecond,
    double FirstStepSeconds, double PeakRssMiB, double FinalLoss);

/// <summary>
/// Training step time of a reference-conditioned model against the base U-Net's own step, in one process on the same
/// data (a small RetriBooru-Synth world written to a temporary folder): issue #5's benchmark. Figures, not a test:
/// they depend on the machine and its load.
/// </summary>
public static class StepBenchmark
{
    public sealed record Options
    {
        public string Config { get; init; } = "tiny";
        public int BatchSize { get; init; } = 16;
        public int Steps { get; init; } = 50;
        /// <summary>References per example: half face, half clothes (the paper's 2 + 2).</summary>
        public int References { get; init; } = 4;
        public IReadOnlyList<string> Models { get; init; } = ["retrinet"];
        public long Seed { get; init; }
    }

    public static IReadOnlyList<StepBenchmarkPhase> Run(Options options, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        if (options.Steps < 2) throw new ArgumentOutOfRangeException(nameof(options), options.Steps, "the benchmark needs at least 2 steps (the first is timed apart)");
        if (options.References < 1) throw new ArgumentOutOfRangeException(nameof(options), options.References, "need at least one reference");
        foreach (var kind in options.Models)
            if (!ReferenceModels.Kinds.Contains(kind)) throw new ArgumentException($"unknown model '{kind}'; known: {string.Join(", ", ReferenceModels.Kinds)}");
        TorchRuntime.EnsureLoaded();
        var config = ModelConfigs.Get(options.Config);
        var root = Path.Combine(Path.GetTempPath(), "retribooru-step-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var dataset = Path.Combine(root, "data");
            progress?.Report($"writing a {config.ImageSize} px synthetic world to {dataset}");
            int faces = (options.References + 1) / 2, clothes = options.References / 2;
            SynthDataset.Create(dataset, new SynthOptions { Characters = 8, OutfitsPerCharacter = 2, ImagesPerCharacter = 12, Size = config.ImageSize, Seed = 1 },
                new BuildOptions { FaceReferences = faces, ClothesReferences = clothes }, cancellationToken: cancellation);
            var phases = new List<StepBenchmarkPhase>();
            var source = new DatasetFolderSource(dataset, config.ImageSize);
            {
                progress?.Report("base U-Net step");
                using var model = BaseModelFactory.Create(config, source, options.Seed);
                var task = new TextToImageTask(model, source);
                phases.Add(Measure("base", task, 0, options, Path.Combine(root, "base"), cancellation));
            }
            // Loaded once: every reference model trains on the same in-memory examples (the task only reads them).
            using var data = new ReferenceDataset(dataset, ManifestReader.Read(dataset, "b", SplitNames.Train), config.ImageSize);
            foreach (var kind in options.Models)
            {
                progress?.Report($"{kind} step");
                using var model = BaseModelFactory.Create(config, source, options.Seed);
                var branch = ReferenceModels.Create(kind, model, seed: options.Seed);
                using var task = new ReferenceTrainingTask(model, branch, data);
                phases.Add(Measure(kind, task, data.MaxReferences, options, Path.Combine(root, kind), cancellation));
            }
            return phases;
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    static StepBenchmarkPhase Measure(string name, ITrainingTask task, int references, Options options, string outDir, CancellationToken cancellation)
    {
        double peak = 0, firstStepAt = 0, lastStepAt = 0, lastLoss = double.NaN;
        var clock = Stopwatch.StartNew();
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            lastStepAt = clock.Elapsed.TotalSeconds;
            if (p.Step == 0) firstStepAt = lastStepAt;
            using var self = Process.GetCurrentProcess();
            peak = Math.Max(peak, self.WorkingSet64 / 1048576.0);
            lastLoss = p.Loss;
        });
        // Only the final checkpoint is written, after the last step is timed, so the rate is the step's own.
        var trainer = new TrainerOptions { Steps = options.Steps, BatchSize = options.BatchSize, LearningRate = 5e-4, WarmupSteps = 0, Seed = options.Seed, CheckpointEvery = 0 };
        var result = new DiffusionTrainer(task, trainer).Run(outDir, progress: progress, cancellation: cancellation);
        long trainable = task.TrainableParameters.Sum(p => p.Value.numel());
        double rate = (result.StepsDone - 1) / Math.Max(lastStepAt - firstStepAt, 1e-9);
        return new StepBenchmarkPhase(name, trainable, (int)result.StepsDone, options.BatchSize, references, rate, firstStepAt, peak, lastLoss);
    }
}
