using RetriBooru.Settings;
using System.Diagnostics;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Modeling;
using RetriBooru.Runtime;

namespace RetriBooru.Diffusion;

/// <summary>What a soak run did, and every failure it survived.</summary>
public sealed record SoakResult(long TrainingSteps, int Samples, IReadOnlyList<string> Failures, int Gen0Collections, int Gen2Collections, double Seconds);

/// <summary>
/// A long run of the hot paths in one process while garbage collections run all the time: base text-to-image training
/// (AdamW, EMA, gradient clipping, min-SNR weights), RetriNet training, text-to-image and reference sampling (DDIM with
/// guidance). It turns TorchSharp 0.107's rare implicit-Scalar finalisation race (a temporary Scalar freed while its
/// native call still reads it: "Unknown scalar type", toFloat failures, segmentation faults) into a frequent one:
/// a background thread forces a gen-0 collection every millisecond, and DOTNET_GCgen0size=0x10000 in the environment
/// adds allocation-driven ones. A failure is recorded and the run goes on (training resumes from its last checkpoint),
/// so the count is the measurement; a segmentation fault ends the process.
/// </summary>
public static class SoakBenchmark
{
    public sealed record Options
    {
        public string Config { get; init; } = "tiny";
        /// <summary>Training steps, split evenly between the base model and RetriNet.</summary>
        public int Steps { get; init; } = 20_000;
        /// <summary>Images sampled, split evenly between text-to-image and reference sampling.</summary>
        public int Samples { get; init; } = 2_000;
        public int BatchSize { get; init; } = 2;
        public int SampleSteps { get; init; } = 10;
        /// <summary>Force a gen-0 collection every millisecond on a background thread.</summary>
        public bool GcStorm { get; init; } = true;
        public long Seed { get; init; }
    }

    /// <summary>Steps per trainer run; a failure loses at most this many steps, which are run again from the checkpoint.</summary>
    const int Segment = 500;

    public static SoakResult Run(Options options, IProgress<string>? progress = null, CancellationToken cancellation = default)
    {
        if (options.Steps < 2 || options.Samples < 2) throw new ArgumentOutOfRangeException(nameof(options), "the soak needs at least 2 steps and 2 samples (one per phase)");
        TorchRuntime.EnsureLoaded();
        var config = ModelConfigs.Get(options.Config);
        var root = Path.Combine(Path.GetTempPath(), "retribooru-soak-" + Guid.NewGuid().ToString("N"));
        var failures = new List<string>();
        int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
        var clock = Stopwatch.StartNew();
        using var storm = options.GcStorm ? new CollectionStorm() : null;
        try
        {
            var dataset = Path.Combine(root, "data");
            SynthDataset.Create(dataset, new SynthOptions { Characters = 6, OutfitsPerCharacter = 2, ImagesPerCharacter = 8, Size = config.ImageSize, Seed = 1 },
                new BuildOptions(), cancellationToken: cancellation);
            var source = new DatasetFolderSource(dataset, config.ImageSize);
            using var model = BaseModelFactory.Create(config, source, options.Seed);
            int baseSteps = options.Steps / 2, referenceSteps = options.Steps - baseSteps;
            var trainer = new TrainerOptions { BatchSize = options.BatchSize, LearningRate = 1e-3, WarmupSteps = 10, EmaDecay = 0.99, Seed = options.Seed };

            progress?.Report($"base training, {baseSteps} steps");
            Train(new TextToImageTask(model, source, minSnrGamma: TrainingRecipe.MinSnrGamma), trainer with { Steps = baseSteps }, Path.Combine(root, "base"), failures, progress, cancellation);

            int textSamples = options.Samples / 2;
            progress?.Report($"text-to-image sampling, {textSamples} images");
            var prompts = source.Prompts.Take(options.BatchSize).DefaultIfEmpty("1girl").ToList();
            for (int done = 0; done < textSamples && !cancellation.IsCancellationRequested; done += prompts.Count)
                Attempt(failures, $"text-to-image sample {done}", () =>
                {
                    using var images = TextToImage.Generate(model, prompts.Take(textSamples - done).ToList(), new SamplingOptions { Steps = options.SampleSteps, Seed = done });
                });

            var examples = ManifestReader.Read(dataset, ReferenceScheme.B, SplitNames.Train);
            using var data = new ReferenceDataset(dataset, examples, config.ImageSize);
            var branch = ReferenceModels.Create("retrinet", model, seed: options.Seed);
            using var task = new ReferenceTrainingTask(model, branch, data);
            progress?.Report($"RetriNet training, {referenceSteps} steps");
            Train(task, trainer with { Steps = referenceSteps }, Path.Combine(root, "retrinet"), failures, progress, cancellation);

            int referenceSamples = options.Samples - textSamples;
            progress?.Report($"reference sampling, {referenceSamples} images");
            var items = data.Items.Take(options.BatchSize).ToList();
            for (int done = 0; done < referenceSamples && !cancellation.IsCancellationRequested; done += items.Count)
                Attempt(failures, $"reference sample {done}", () =>
                {
                    var batch = items.Take(referenceSamples - done).ToList();
                    using var images = ReferenceSampler.Generate(model, branch, batch.Select(e => e.Prompt).ToList(), batch.Select(e => e.References).ToList(),
                        new ReferenceSamplingOptions { Steps = options.SampleSteps, Seed = done });
                });
            return new SoakResult(options.Steps, options.Samples, failures, GC.CollectionCount(0) - gen0, GC.CollectionCount(2) - gen2, clock.Elapsed.TotalSeconds);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Trains in segments of <see cref="Segment"/> steps; a failed segment is recorded and run again from the last checkpoint.</summary>
    static void Train(ITrainingTask task, TrainerOptions options, string outDir, List<string> failures, IProgress<string>? progress, CancellationToken cancellation)
    {
        long done = 0;
        int failuresHere = 0;
        while (done < options.Steps && !cancellation.IsCancellationRequested)
        {
            long target = Math.Min(options.Steps, done + Segment);
            bool resume = done > 0;
            long reached = done;
            bool ok = Attempt(failures, $"training steps {done}-{target}", () =>
                reached = new DiffusionTrainer(task, options with { StopAfter = (int)target }).Run(outDir, resume, cancellation: cancellation).StepsDone);
            if (ok) done = reached;
            else if (++failuresHere > 100) throw new InvalidOperationException($"{failuresHere} failed training segments; giving up: {failures[^1]}");
            progress?.Report($"  {done}/{options.Steps} steps, {failures.Count} failures so far" + (ok ? "" : $" (last: {failures[^1]})"));
        }
    }

    static bool Attempt(List<string> failures, string what, Action action)
    {
        try
        {
            action();
            return true;
        }
        catch (Exception e) when (e is not (OperationCanceledException or OutOfMemoryException))
        {
            failures.Add($"{what}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            return false;
        }
    }

    /// <summary>A background thread that forces a gen-0 collection every millisecond until disposed.</summary>
    sealed class CollectionStorm : IDisposable
    {
        volatile bool stop;
        readonly Thread thread;

        public CollectionStorm()
        {
            thread = new Thread(() =>
            {
                while (!stop)
                {
                    GC.Collect(0, GCCollectionMode.Forced, blocking: true);
                    Thread.Sleep(1);
                }
            }) { IsBackground = true, Name = "soak GC storm" };
            thread.Start();
        }

        public void Dispose()
        {
            stop = true;
            thread.Join();
        }
    }
}
