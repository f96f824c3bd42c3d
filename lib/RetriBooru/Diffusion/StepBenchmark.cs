using RetriBooru.Settings;
using System.Diagnostics;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using TorchSharp;

namespace RetriBooru.Diffusion;

/// <summary>Figures of one benchmarked training phase.</summary>
/// <param name="Model">"base" (the text-to-image U-Net step) or a reference model kind.</param>
/// <param name="TrainableParameters">Parameters the optimiser updates in this phase.</param>
/// <param name="StepsPerSecond">Steady rate: steps after the first over the time after the first.</param>
/// <param name="FirstStepSeconds">The first step (allocation, kernel selection) on its own.</param>
/// <param name="PeakRssMiB">Largest resident set size seen after any step of the phase.</param>
/// <param name="Loop">"trainer" (<see cref="DiffusionTrainer"/>) or "bare" (the same task and optimiser calls in a plain loop, one thread).</param>
/// <param name="Threads">libtorch threads of the phase's calling thread.</param>
/// <param name="Shards">Threads each batch was split across.</param>
/// <param name="DataWaitMs">Mean time a step waited for its prepared batch (the trainer prefetches; the bare loop prepares inline).</param>
/// <param name="GflopPerStep">Forward + backward FLOPs of one step counted from the module graph (<see cref="FlopCounter"/>), in GFLOP.</param>
/// <param name="PeakGflops">fp32 matmul rate (1024x1024) measured in the same process at the phase's thread count: the MFU denominator.</param>
public sealed record StepBenchmarkPhase(string Model, long TrainableParameters, int Steps, int BatchSize, int References, double StepsPerSecond,
    double FirstStepSeconds, double PeakRssMiB, double FinalLoss, string Loop = "trainer", int Threads = 1, int Shards = 1, double DataWaitMs = 0,
    double GflopPerStep = 0, double PeakGflops = 0)
{
    public double AchievedGflops => GflopPerStep * StepsPerSecond;
    /// <summary>Model-FLOP utilisation: achieved GFLOP/s over the matmul rate at the same thread count.</summary>
    public double Mfu => PeakGflops > 0 ? AchievedGflops / PeakGflops : 0;
}

/// <summary>
/// Training step time of a reference-conditioned model against the base U-Net's own step, in one process on the same
/// data (a small RetriBooru-Synth world written to a temporary folder): issue #5's benchmark. The base step is timed three
/// ways: a bare loop of the same calls and the trainer, both on one thread (the trainer's own overhead), and the trainer at
/// the caller's thread count (what threads buy). Figures, not a test: they depend on the machine and its load.
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
            Words.Parse<ModelKind>(kind);
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
            int threads = TorchRuntime.Threads;
            progress?.Report("fp32 matmul rate at 1 thread and at the caller's thread count (the MFU denominators)");
            var peak = new Dictionary<int, double> { [threads] = TorchRuntime.MeasureMatmulGflops() };
            TorchRuntime.Threads = 1;
            try { peak[1] = TorchRuntime.MeasureMatmulGflops(); }
            finally { TorchRuntime.Threads = threads; }
            StepBenchmarkPhase WithFlops(StepBenchmarkPhase phase, FlopCount flops) =>
                phase with { GflopPerStep = flops.TrainingStep / 1e9, PeakGflops = peak.GetValueOrDefault(phase.Threads) };
            {
                using var model = BaseModelFactory.Create(config, source, options.Seed);
                var task = new TextToImageTask(model, source);
                var flops = CountStepFlops(task, [model.Unet, model.TextEncoder], options);
                // The trainer against a plain loop of the same calls, both on one thread; then the trainer at the
                // default thread count (the batch split across threads). Each phase continues training the same model.
                progress?.Report("base U-Net step: bare loop, 1 thread");
                TorchRuntime.Threads = 1;
                try
                {
                    phases.Add(WithFlops(MeasureBareLoop("base", task, options, cancellation), flops));
                    progress?.Report("base U-Net step: trainer, 1 thread");
                    phases.Add(WithFlops(Measure("base", task, 0, options, Path.Combine(root, "base-1"), cancellation, shards: 1), flops));
                }
                finally { TorchRuntime.Threads = threads; }
                if (threads > 1)
                {
                    progress?.Report($"base U-Net step: trainer, {threads} threads");
                    phases.Add(WithFlops(Measure("base", task, 0, options, Path.Combine(root, "base"), cancellation), flops));
                }
            }
            // Loaded once: every reference model trains on the same in-memory examples (the task only reads them).
            using var data = new ReferenceDataset(dataset, ManifestReader.Read(dataset, ReferenceScheme.B, SplitNames.Train), config.ImageSize);
            foreach (var kind in options.Models)
            {
                progress?.Report($"{kind} step");
                using var model = BaseModelFactory.Create(config, source, options.Seed);
                var branch = ReferenceModels.Create(kind, model, seed: options.Seed);
                using var task = new ReferenceTrainingTask(model, branch, data);
                var flops = CountStepFlops(task, [branch.Module, model.Unet, model.TextEncoder], options);
                phases.Add(WithFlops(Measure(kind, task, data.MaxReferences, options, Path.Combine(root, kind), cancellation), flops));
            }
            return phases;
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    static StepBenchmarkPhase Measure(string name, ITrainingTask task, int references, Options options, string outDir, CancellationToken cancellation, int? shards = null)
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
        var result = new DiffusionTrainer(task, trainer) { Shards = shards }.Run(outDir, progress: progress, cancellation: cancellation);
        long trainable = task.TrainableParameters.Sum(p => p.Value.numel());
        double rate = (result.StepsDone - 1) / Math.Max(lastStepAt - firstStepAt, 1e-9);
        return new StepBenchmarkPhase(name, trainable, (int)result.StepsDone, options.BatchSize, references, rate, firstStepAt, peak, lastLoss,
            "trainer", TorchRuntime.Threads, result.Shards, 1000 * result.DataWaitSeconds / Math.Max(result.StepsDone, 1));
    }

    /// <summary>FLOPs of one training step of <paramref name="task"/> on its first batch, counted over <paramref name="modules"/>.</summary>
    public static FlopCount CountStepFlops(ITrainingTask task, IEnumerable<torch.nn.Module> modules, Options options)
    {
        var order = new DataOrder(options.Seed, task.ExampleCount);
        using var generator = Seeding.TorchGenerator(options.Seed, "step/0");
        ITrainingBatch batch;
        using (torch.no_grad()) batch = task.Prepare(order.Batch(0, options.BatchSize), 0, generator);
        using (batch)
            return FlopCounter.Count(modules, () =>
            {
                using var scope = torch.NewDisposeScope();
                task.Loss(batch, 0, batch.Count);
            });
    }

    /// <summary>
    /// The model and optimiser calls of a training step and nothing else (no prefetch, clipping, EMA, log or
    /// progress), timed like <see cref="Measure"/>: what the trainer's own overhead is measured against.
    /// </summary>
    static StepBenchmarkPhase MeasureBareLoop(string name, ITrainingTask task, Options options, CancellationToken cancellation)
    {
        using var buffer = new ParameterBuffer(task.TrainableParameters, task.LearningRateScale);
        using var optimizer = new AdamW(buffer);
        var order = new DataOrder(options.Seed, task.ExampleCount);
        double peak = 0, firstStepAt = 0, lastLoss = double.NaN, waited = 0;
        var clock = Stopwatch.StartNew();
        int step = 0;
        for (; step < options.Steps && !cancellation.IsCancellationRequested; step++)
        {
            using var scope = torch.NewDisposeScope();
            using var generator = Seeding.TorchGenerator(options.Seed, $"step/{step}");
            var prepareStart = clock.Elapsed.TotalSeconds;
            ITrainingBatch batch;
            using (torch.no_grad()) batch = task.Prepare(order.Batch(step, options.BatchSize), step, generator);
            waited += clock.Elapsed.TotalSeconds - prepareStart;
            using (batch)
            {
                buffer.ZeroGradients();
                var loss = task.Loss(batch, 0, batch.Count);
                loss.backward();
                optimizer.Step(5e-4);
                lastLoss = loss.item<float>();
            }
            if (step == 0) firstStepAt = clock.Elapsed.TotalSeconds;
            using var self = Process.GetCurrentProcess();
            peak = Math.Max(peak, self.WorkingSet64 / 1048576.0);
        }
        double rate = (step - 1) / Math.Max(clock.Elapsed.TotalSeconds - firstStepAt, 1e-9);
        return new StepBenchmarkPhase(name, task.TrainableParameters.Sum(p => p.Value.numel()), step, options.BatchSize, 0, rate, firstStepAt, peak, lastLoss,
            "bare", TorchRuntime.Threads, 1, 1000 * waited / Math.Max(step, 1));
    }
}
