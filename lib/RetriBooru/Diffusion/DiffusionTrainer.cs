using System.Diagnostics;
using System.Text.Json;
using RetriBooru.Data;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>Optimisation settings shared by every trainer (base text-to-image, RetriNet).</summary>
public sealed record TrainerOptions
{
    public int Steps { get; init; } = 1000;
    public int BatchSize { get; init; } = 16;
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Linear warm-up from 0 to the learning rate over this many steps, then <see cref="LearningRateSchedule"/>.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>After warm-up: "constant", or "cosine" (half a cosine from the learning rate down to 0 at the last step).</summary>
    public Settings.LearningRateSchedule LearningRateSchedule { get; init; } = TrainingRecipe.LearningRateSchedule;
    public double WeightDecay { get; init; } = 1e-2;
    /// <summary>Global gradient-norm clip (0 = off).</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>EMA decay of the trainable weights (null = no EMA).</summary>
    public double? EmaDecay { get; init; }
    public long Seed { get; init; }
    /// <summary>Write a resumable checkpoint every N steps (0 = only at the end).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Stop (with a checkpoint) after this many steps have run in total, as if interrupted.</summary>
    public int? StopAfter { get; init; }

    public double LearningRateAt(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        if (LearningRateSchedule != Settings.LearningRateSchedule.Cosine || Steps <= WarmupSteps) return LearningRate;
        double progress = Math.Clamp((step - WarmupSteps) / (double)(Steps - WarmupSteps), 0, 1);
        return LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    /// <summary>
    /// The batch clamped to the dataset: a larger batch would only repeat examples within a step while its memory grows
    /// with the request (--batch 100000 on 46 images asked for gigabytes); at the clamp every step sees each example once.
    /// </summary>
    public TrainerOptions FitToDataset(int examples) => examples > 0 && BatchSize > examples ? this with { BatchSize = examples } : this;

    /// <summary>The line a front end logs when <see cref="FitToDataset"/> changes the batch; null when it does not.</summary>
    public string? BatchNote(int examples) => examples > 0 && BatchSize > examples
        ? $"batch size {BatchSize} is larger than the {examples} training examples; using {examples} (each example once per step)" : null;

    /// <summary>Every field checked before anything is allocated; one message naming the field.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"steps must be at least 1, got {Steps}");
        if (BatchSize is < 1 or > 65_536) throw new ArgumentException($"batch size must be in [1, 65536], got {BatchSize}");
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw new ArgumentException($"learning rate must be a positive finite number, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps must be at least 0, got {WarmupSteps}");
        if (!Enum.IsDefined(LearningRateSchedule)) throw new ArgumentException($"unknown learning-rate schedule {(int)LearningRateSchedule}");
        if (!double.IsFinite(WeightDecay) || WeightDecay < 0) throw new ArgumentException($"weight decay must be a finite number >= 0, got {WeightDecay}");
        if (!double.IsFinite(GradClip) || GradClip < 0) throw new ArgumentException($"gradient clip must be a finite number >= 0, got {GradClip}");
        if (EmaDecay is double d && !(d > 0 && d < 1)) throw new ArgumentException($"EMA decay must be in (0, 1), got {d}");
    }
}

/// <summary>One step's examples and randomness, read and drawn before the step runs (possibly on another thread). Owns its tensors.</summary>
public interface ITrainingBatch : IDisposable
{
    int Count { get; }
}

/// <summary>What one optimisation step computes; the trainer owns data order, randomness, optimiser and checkpoints.</summary>
public interface ITrainingTask
{
    /// <summary>Size of the dataset the task indexes into.</summary>
    int ExampleCount { get; }
    /// <summary>Parameters the optimiser updates, with stable names (checkpoint keys).</summary>
    IReadOnlyList<KeyValuePair<string, Parameter>> TrainableParameters { get; }
    /// <summary>
    /// Reads the examples of <paramref name="batch"/> and draws all of the step's randomness from <paramref name="generator"/>
    /// (derived from seed and step), in a fixed order. Runs without gradients on the trainer's prefetch thread while the
    /// previous step computes, so it may only touch state that <see cref="Loss"/> does not.
    /// </summary>
    ITrainingBatch Prepare(int[] batch, long step, Generator generator);
    /// <summary>
    /// The loss contribution of examples [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) of a
    /// prepared batch. Contributions over any partition of the batch sum to the batch's loss, so the trainer can split a
    /// batch across threads and get the same gradient up to float rounding.
    /// </summary>
    Tensor Loss(ITrainingBatch batch, int start, int count);
    /// <summary>Whether <see cref="Loss"/> may run on several threads at once (false when the model keeps per-call state in its modules).</summary>
    bool ConcurrentLoss => true;
    /// <summary>Writes the model (e.g. a diffusers folder) into <paramref name="folder"/>.</summary>
    void SaveModel(string folder);
    /// <summary>Restores the model from a folder written by <see cref="SaveModel"/>.</summary>
    void LoadModel(string folder);
    /// <summary>Recorded in the trainer state (config name, data path, ...).</summary>
    /// <summary>What is trained, for the checkpoint's state file: the task, config, example count and its settings record as serialised.</summary>
    System.Text.Json.Nodes.JsonObject Describe();
    /// <summary>Learning-rate multiplier of one trainable parameter (e.g. a slower pretrained decoder than a new branch).</summary>
    double LearningRateScale(string parameterName) => 1.0;
}

/// <summary>Reported after every step. <paramref name="DataWaitSeconds"/>: how long the step waited for its prepared batch.</summary>
public sealed record TrainingProgress(long Step, int TotalSteps, double Loss, double LearningRate, double GradNorm, double StepsPerSecond, double DataWaitSeconds = 0);

/// <summary>One line of <c>loss.jsonl</c>.</summary>
public sealed record LossLogEntry(long Step, double Loss, double Lr, double GradNorm, double Seconds)
{
    /// <summary>True when the step's first gradient was not finite and the step was computed again (absent otherwise).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public bool? Recomputed { get; init; }

    /// <summary>When recomputed: the first parameter whose first gradient was not finite (where to look for the cause).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? NonFiniteParameter { get; init; }
}

/// <summary>The trainer's resumable state, <c>trainer_state.json</c>.</summary>
public sealed record TrainerState(long Step, long Seed, TrainerOptions Options, System.Text.Json.Nodes.JsonObject Task, string Created);

/// <summary>Outcome of a run. <paramref name="Shards"/>: threads each batch was split across; <paramref name="DataWaitSeconds"/>: total time steps waited for data.</summary>
public sealed record TrainingResult(long StepsDone, bool Finished, IReadOnlyList<double> Losses, string CheckpointFolder, double StepsPerSecond,
    int Shards = 1, double DataWaitSeconds = 0)
{
    /// <summary>Steps of this run whose first gradient was not finite and that were computed again (marked in <c>loss.jsonl</c>).</summary>
    public IReadOnlyList<long> RecomputedSteps { get; init; } = [];

    /// <summary>One line for the user when steps were computed again (null when none were).</summary>
    public string? RecomputedNote => RecomputedSteps.Count == 0 ? null
        : $"{RecomputedSteps.Count} step(s) ({string.Join(", ", RecomputedSteps.Take(5))}{(RecomputedSteps.Count > 5 ? ", ..." : "")}) had a non-finite gradient and were computed again (marked \"recomputed\" in {DiffusionTrainer.LossLog})";
}

/// <summary>
/// A seeded, resumable training loop: AdamW with warm-up, gradient clipping, optional EMA. Every step's
/// randomness is derived from (seed, step) and the data order from (seed, epoch), so a run stopped after step
/// k and resumed from its checkpoint produces bit-identical losses to an uninterrupted run (at the same thread count).
/// The next batch is prepared on a background thread while the current step computes; each batch is split across
/// <see cref="Shards"/> worker threads (one libtorch thread each) whose gradients are summed in a fixed order; the
/// optimiser works on one flat buffer (<see cref="ParameterBuffer"/>). Layout of OUT:
/// <c>loss.jsonl</c> (one line per step), <c>checkpoint/</c> (<c>model/</c>, <c>optimizer.safetensors</c>,
/// <c>ema.safetensors</c>, <c>trainer_state.json</c>) and <c>model/</c> (the final model, EMA weights when enabled).
/// </summary>
public sealed class DiffusionTrainer(ITrainingTask task, TrainerOptions requested)
{
    // Front ends log requested.BatchNote(examples) when this clamps the batch.
    readonly TrainerOptions options = requested.FitToDataset(task.ExampleCount);

    public const string LossLog = "loss.jsonl";
    public const string CheckpointFolder = "checkpoint";
    public const string StateFile = "trainer_state.json";

    /// <summary>
    /// Threads each batch is split across (null: libtorch's thread count, at most the batch size; 1 when the task's loss
    /// cannot run concurrently). The split changes the numbers only by float rounding; the thread count is recorded.
    /// </summary>
    public int? Shards { get; init; }

    /// <summary>The shard count a run with these options uses on this machine (always 1 when the task's loss cannot run concurrently).</summary>
    public int ResolveShards()
    {
        if (!task.ConcurrentLoss) return 1;
        if (Shards is int requested)
        {
            if (requested < 1) throw new ArgumentException($"shards must be at least 1, got {requested}");
            return Math.Min(requested, options.BatchSize);
        }
        return Math.Clamp(TorchRuntime.Threads, 1, options.BatchSize);
    }

    public TrainingResult Run(string outDir, bool resume = false, IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        TorchRuntime.EnsureLoaded();
        options.Validate();
        Directory.CreateDirectory(outDir);
        var parameters = task.TrainableParameters;
        if (parameters.Count == 0) throw new InvalidOperationException("the task has no trainable parameters");
        int shards = ResolveShards();
        using var buffer = new ParameterBuffer(parameters, task.LearningRateScale);
        using var optimizer = new AdamW(buffer) { WeightDecay = options.WeightDecay };
        using var ema = options.EmaDecay is double decay ? new ExponentialMovingAverage(buffer, decay) : null;

        var checkpoint = Path.Combine(outDir, CheckpointFolder);
        long start = 0;
        var logPath = Path.Combine(outDir, LossLog);
        var kept = new List<string>();
        if (resume)
        {
            start = LoadCheckpoint(checkpoint, optimizer, ema);
            // Steps after the checkpoint (a run killed between checkpoints) are run again, so their lines go.
            if (File.Exists(logPath)) kept.AddRange(File.ReadLines(logPath).Where(l => LoggedStep(l) < start));
        }
        using var log = new LossLogFile(logPath, kept);

        var losses = new List<double>();
        var recomputedSteps = new List<long>();
        long end = Math.Min(options.Steps, options.StopAfter ?? options.Steps);
        using var workers = new TorchWorkerPool(shards, "retribooru-shard");
        using var prefetch = new BatchPrefetcher(task, options, start, end);
        double waited = 0;
        var clock = Stopwatch.StartNew();
        long step = start;
        for (; step < end && !cancellation.IsCancellationRequested; step++)
        {
            using var scope = NewDisposeScope();
            var stepClock = Stopwatch.StartNew();
            using var batch = prefetch.Take(step);
            double wait = stepClock.Elapsed.TotalSeconds;
            waited += wait;
            double ComputeGradients()
            {
                buffer.ZeroGradients();
                return shards > 1 ? ShardedGradients(batch, buffer, workers.Workers) : SingleGradients(batch);
            }
            double value = ComputeGradients();
            double gradNorm = buffer.ClipGradNorm(options.GradClip);
            bool recomputed = false;
            string? nonFinite = null;
            if (!double.IsFinite(gradNorm))
            {
                // A finite loss with a NaN gradient came from a faulty kernel (oneDNN's convolution backward on an
                // AVX-512 CPU, now off by default), not from divergence; it did not recur at the same step on a rerun.
                // So the same batch is computed again, and only a second non-finite gradient stops the run.
                double firstNorm = gradNorm, firstLoss = value;
                nonFinite = buffer.FirstNonFiniteGradient();
                value = ComputeGradients();
                gradNorm = buffer.ClipGradNorm(options.GradClip);
                if (!double.IsFinite(gradNorm))
                    throw new InvalidOperationException($"step {step}: gradient norm is {gradNorm} (loss {value}; first non-finite gradient: {buffer.FirstNonFiniteGradient()}), and was {firstNorm} (loss {firstLoss}) before the step was computed again; lower the learning rate{(Runtime.OneDnn.Enabled == true ? $", or set {Runtime.OneDnn.EnvironmentVariable}=0 (oneDNN's kernels gave NaN gradients on an AVX-512 CPU, see docs/troubleshooting.md)" : "")}");
                recomputed = true;
                recomputedSteps.Add(step);
            }
            double lr = options.LearningRateAt(step);
            optimizer.Step(lr);
            ema?.Update(step);
            losses.Add(value);
            log.Append(JsonSerializer.Serialize(new LossLogEntry(step, value, lr, gradNorm, stepClock.Elapsed.TotalSeconds) { Recomputed = recomputed ? true : null, NonFiniteParameter = nonFinite }, WorkbenchJson.Lines));
            progress?.Report(new TrainingProgress(step, options.Steps, value, lr, gradNorm, (step - start + 1) / clock.Elapsed.TotalSeconds, wait));
            if (options.CheckpointEvery > 0 && (step + 1) % options.CheckpointEvery == 0 && step + 1 < end)
                SaveCheckpoint(outDir, step + 1, optimizer, ema);
        }
        double rate = (step - start) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        // Also on cancellation (Ctrl-C, SIGTERM): the run can continue from here with --resume.
        SaveCheckpoint(outDir, step, optimizer, ema);
        bool finished = step >= options.Steps;
        if (finished)
        {
            // The exported model carries the EMA weights when EMA is on (the checkpoint keeps the raw ones).
            if (ema is not null)
            {
                using var raw = NewDisposeScope();
                var saved = buffer.Values.detach().clone();
                ema.CopyTo();
                task.SaveModel(Path.Combine(outDir, "model"));
                using (no_grad()) buffer.Values.copy_(saved);
            }
            else
            {
                using var scope = NewDisposeScope();
                task.SaveModel(Path.Combine(outDir, "model"));
            }
        }
        return new TrainingResult(step, finished, losses, checkpoint, rate, shards, waited) { RecomputedSteps = recomputedSteps };
    }

    /// <summary>The whole batch on this thread; backward accumulates into the buffer's gradient views.</summary>
    double SingleGradients(ITrainingBatch batch)
    {
        using var scope = NewDisposeScope();
        var loss = task.Loss(batch, 0, batch.Count);
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>
    /// Splits the batch into contiguous shards, one per worker; each returns its gradient flattened, and they are summed
    /// in shard order so the result does not depend on which worker finishes first.
    /// </summary>
    double ShardedGradients(ITrainingBatch batch, ParameterBuffer buffer, IReadOnlyList<TorchWorker> workers)
    {
        var inputs = buffer.Parameters.Select(p => (Tensor)p.Value).ToList();
        var results = TorchWorker.RunSplit(workers, batch.Count, (start, count) =>
        {
            using var scope = NewDisposeScope();
            var loss = task.Loss(batch, start, count);
            var grads = autograd.grad([loss], inputs, allow_unused: true);
            var flat = buffer.Flatten(grads.Select(g => g is null || g.Handle == IntPtr.Zero ? null : g).ToList());
            return (Gradient: flat.MoveToOuterDisposeScope(), Loss: (double)loss.item<float>());
        }, release: result => result.Gradient.Dispose());
        double total = 0;
        using (no_grad())
            for (int i = 0; i < results.Count; i++)
            {
                using var gradient = results[i].Gradient;
                if (i == 0) buffer.Gradients.copy_(gradient);
                else buffer.Gradients.AddScaledInPlace(gradient, 1.0);
                total += results[i].Loss;
            }
        return total;
    }

    /// <summary>The step of a loss-log line; long.MaxValue for a line cut short when a run was killed mid-write.</summary>
    static long LoggedStep(string line)
    {
        try { return line.Length == 0 ? long.MaxValue : JsonSerializer.Deserialize<LossLogEntry>(line, WorkbenchJson.Lines)?.Step ?? long.MaxValue; }
        catch (JsonException) { return long.MaxValue; }
    }

    /// <summary>loss.jsonl, appended and flushed after every step, so an interrupted or killed run keeps its curve.</summary>
    sealed class LossLogFile : IDisposable
    {
        readonly StreamWriter writer;

        /// <param name="kept">Lines of earlier steps (a resumed run); the file is rewritten with them atomically first.</param>
        public LossLogFile(string path, IReadOnlyList<string> kept)
        {
            AtomicFile.WriteAllLines(path, kept);
            writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        }

        public void Append(string line) => writer.WriteLine(line);
        public void Dispose() => writer.Dispose();
    }

    void SaveCheckpoint(string outDir, long step, AdamW optimizer, ExponentialMovingAverage? ema)
    {
        // The optimizer's and EMA's per-parameter views live (and are released) in this scope.
        using var scope = NewDisposeScope();
        var checkpoint = Path.Combine(outDir, CheckpointFolder);
        // Write into a fresh folder, then swap, so an interrupted save never leaves a half checkpoint.
        var staging = checkpoint + ".tmp";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(staging);
        task.SaveModel(Path.Combine(staging, "model"));
        SafeTensors.Save(Path.Combine(staging, "optimizer.safetensors"), optimizer.State(), new Dictionary<string, string> { ["format"] = "pt" });
        if (ema is not null) SafeTensors.Save(Path.Combine(staging, "ema.safetensors"), ema.Shadow, new Dictionary<string, string> { ["format"] = "pt" });
        var state = new TrainerState(step, options.Seed, options, task.Describe(), DateTime.UtcNow.ToString("O"));
        AtomicFile.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, WorkbenchJson.Pretty));
        var old = checkpoint + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(checkpoint)) Directory.Move(checkpoint, old);
        Directory.Move(staging, checkpoint);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    long LoadCheckpoint(string checkpoint, AdamW optimizer, ExponentialMovingAverage? ema)
    {
        var statePath = Path.Combine(checkpoint, StateFile);
        if (!File.Exists(statePath)) throw new FileNotFoundException($"{statePath}: no checkpoint to resume from", statePath);
        TrainerState state;
        try { state = JsonSerializer.Deserialize<TrainerState>(RegularFile.ReadAllText(statePath, "trainer state"), WorkbenchJson.Lines) ?? throw new JsonException("null"); }
        catch (JsonException e) { throw new InvalidDataException($"{statePath}: not a trainer state ({e.Message})", e); }
        if (state.Seed != options.Seed) throw new InvalidOperationException($"{statePath}: checkpoint was trained with seed {state.Seed}, not {options.Seed}; resuming would not reproduce the run");
        if (state.Options.BatchSize != options.BatchSize) throw new InvalidOperationException($"{statePath}: checkpoint batch size {state.Options.BatchSize} differs from {options.BatchSize}");
        task.LoadModel(Path.Combine(checkpoint, "model"));
        var optimizerPath = Path.Combine(checkpoint, "optimizer.safetensors");
        var optimizerState = SafeTensors.Load(optimizerPath);
        try { optimizer.LoadState(optimizerState, optimizerPath); }
        finally { foreach (var t in optimizerState.Values) t.Dispose(); }
        if (ema is not null)
        {
            var emaPath = Path.Combine(checkpoint, "ema.safetensors");
            var emaState = SafeTensors.Load(emaPath);
            try { ema.LoadState(emaState, emaPath); }
            finally { foreach (var t in emaState.Values) t.Dispose(); }
        }
        return state.Step;
    }
}

/// <summary>
/// Prepares step k + 1's batch on a background thread while step k computes (the data order and each step's
/// generator depend only on the seed and step, so prefetching changes no number).
/// </summary>
sealed class BatchPrefetcher : IDisposable
{
    readonly ITrainingTask task;
    readonly TrainerOptions options;
    readonly DataOrder order;
    readonly long end;
    readonly TorchWorker worker;
    Task<ITrainingBatch>? pending;
    long pendingStep;

    public BatchPrefetcher(ITrainingTask task, TrainerOptions options, long start, long end)
    {
        this.task = task;
        this.options = options;
        this.end = end;
        order = new DataOrder(options.Seed, task.ExampleCount);
        worker = TorchWorker.StartMany(1, intraOpThreads: 1, "retribooru-prefetch")[0];
        if (start < end) Queue(start);
    }

    void Queue(long step)
    {
        pendingStep = step;
        pending = worker.Run(() =>
        {
            using var noGrad = no_grad();
            using var generator = Seeding.TorchGenerator(options.Seed, $"step/{step}");
            return task.Prepare(order.Batch(step, options.BatchSize), step, generator);
        });
    }

    /// <summary>The batch of <paramref name="step"/> (waiting for it if needed); the next step's starts preparing at once.</summary>
    public ITrainingBatch Take(long step)
    {
        if (pending is null || pendingStep != step) throw new InvalidOperationException($"batch of step {step} was not prefetched (next is {pendingStep})");
        var batch = pending.GetAwaiter().GetResult();
        pending = null;
        if (step + 1 < end) Queue(step + 1);
        return batch;
    }

    public void Dispose()
    {
        // A batch prepared for a step that never ran (stop, cancellation, failure) is waited for and released.
        if (pending is not null)
        {
            try { pending.GetAwaiter().GetResult().Dispose(); }
            catch (Exception) { /* the step that would have used it is not running; its failure is moot */ }
        }
        worker.Dispose();
    }
}
