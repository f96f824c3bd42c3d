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
    public string LearningRateSchedule { get; init; } = TrainingRecipe.LearningRateSchedule;
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
        if (LearningRateSchedule != "cosine" || Steps <= WarmupSteps) return LearningRate;
        double progress = Math.Clamp((step - WarmupSteps) / (double)(Steps - WarmupSteps), 0, 1);
        return LearningRate * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }

    public static readonly IReadOnlyList<string> LearningRateSchedules = ["constant", "cosine"];

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
        if (!LearningRateSchedules.Contains(LearningRateSchedule)) throw new ArgumentException($"unknown learning-rate schedule '{LearningRateSchedule}' ({string.Join(" or ", LearningRateSchedules)})");
        if (!double.IsFinite(WeightDecay) || WeightDecay < 0) throw new ArgumentException($"weight decay must be a finite number >= 0, got {WeightDecay}");
        if (!double.IsFinite(GradClip) || GradClip < 0) throw new ArgumentException($"gradient clip must be a finite number >= 0, got {GradClip}");
        if (EmaDecay is double d && !(d > 0 && d < 1)) throw new ArgumentException($"EMA decay must be in (0, 1), got {d}");
    }
}

/// <summary>What one optimisation step computes; the trainer owns data order, randomness, optimiser and checkpoints.</summary>
public interface ITrainingTask
{
    /// <summary>Size of the dataset the task indexes into.</summary>
    int ExampleCount { get; }
    /// <summary>Parameters the optimiser updates, with stable names (checkpoint keys).</summary>
    IReadOnlyList<KeyValuePair<string, Parameter>> TrainableParameters { get; }
    /// <summary>The scalar loss for a batch. All randomness must come from <paramref name="generator"/> (derived from seed and step).</summary>
    Tensor Loss(int[] batch, long step, Generator generator);
    /// <summary>Writes the model (e.g. a diffusers folder) into <paramref name="folder"/>.</summary>
    void SaveModel(string folder);
    /// <summary>Restores the model from a folder written by <see cref="SaveModel"/>.</summary>
    void LoadModel(string folder);
    /// <summary>Recorded in the trainer state (config name, data path, ...).</summary>
    IReadOnlyDictionary<string, string> Describe();
    /// <summary>Learning-rate multiplier of one trainable parameter (e.g. a slower pretrained decoder than a new branch).</summary>
    double LearningRateScale(string parameterName) => 1.0;
}

/// <summary>Reported after every step.</summary>
public sealed record TrainingProgress(long Step, int TotalSteps, double Loss, double LearningRate, double GradNorm, double StepsPerSecond);

/// <summary>One line of <c>loss.jsonl</c>.</summary>
public sealed record LossLogEntry(long Step, double Loss, double Lr, double GradNorm, double Seconds);

/// <summary>The trainer's resumable state, <c>trainer_state.json</c>.</summary>
public sealed record TrainerState(long Step, long Seed, TrainerOptions Options, IReadOnlyDictionary<string, string> Task, string Created);

/// <summary>Outcome of a run.</summary>
public sealed record TrainingResult(long StepsDone, bool Finished, IReadOnlyList<double> Losses, string CheckpointFolder, double StepsPerSecond);

/// <summary>
/// A seeded, resumable training loop: AdamW with warm-up, gradient clipping, optional EMA. Every step's
/// randomness is derived from (seed, step) and the data order from (seed, epoch), so a run stopped after step
/// k and resumed from its checkpoint produces bit-identical losses to an uninterrupted run. Layout of OUT:
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

    public TrainingResult Run(string outDir, bool resume = false, IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default)
    {
        TorchRuntime.EnsureLoaded();
        options.Validate();
        Directory.CreateDirectory(outDir);
        var parameters = task.TrainableParameters;
        if (parameters.Count == 0) throw new InvalidOperationException("the task has no trainable parameters");
        using var optimizer = new AdamW(parameters) { WeightDecay = options.WeightDecay, LearningRateScale = task.LearningRateScale };
        using var ema = options.EmaDecay is double decay ? new ExponentialMovingAverage(parameters, decay) : null;

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

        var order = new DataOrder(options.Seed, task.ExampleCount);
        var losses = new List<double>();
        long end = Math.Min(options.Steps, options.StopAfter ?? options.Steps);
        var clock = Stopwatch.StartNew();
        long step = start;
        for (; step < end && !cancellation.IsCancellationRequested; step++)
        {
            using var scope = NewDisposeScope();
            var stepClock = Stopwatch.StartNew();
            using var generator = Seeding.TorchGenerator(options.Seed, $"step/{step}");
            var batch = order.Batch(step, options.BatchSize);
            optimizer.ZeroGrad();
            var loss = task.Loss(batch, step, generator);
            loss.backward();
            double gradNorm = ClipGradNorm(parameters, options.GradClip);
            if (!double.IsFinite(gradNorm)) throw new InvalidOperationException($"step {step}: gradient norm is {gradNorm} (loss {loss.item<float>()}); lower the learning rate");
            double lr = options.LearningRateAt(step);
            optimizer.Step(lr);
            ema?.Update(step);
            double value = loss.item<float>();
            losses.Add(value);
            log.Append(JsonSerializer.Serialize(new LossLogEntry(step, value, lr, gradNorm, stepClock.Elapsed.TotalSeconds), WorkbenchJson.Lines));
            progress?.Report(new TrainingProgress(step, options.Steps, value, lr, gradNorm, (step - start + 1) / clock.Elapsed.TotalSeconds));
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
                var saved = parameters.Select(p => p.Value.detach().clone()).ToList();
                ema.CopyTo();
                task.SaveModel(Path.Combine(outDir, "model"));
                using (no_grad()) for (int i = 0; i < saved.Count; i++) parameters[i].Value.copy_(saved[i]);
            }
            else task.SaveModel(Path.Combine(outDir, "model"));
        }
        return new TrainingResult(step, finished, losses, checkpoint, rate);
    }

    /// <summary>Global L2 norm of all gradients; scales them down to <paramref name="maxNorm"/> when larger (0 = measure only).</summary>
    public static double ClipGradNorm(IReadOnlyList<KeyValuePair<string, Parameter>> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        var grads = parameters.Select(p => p.Value.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        double total = stack(grads.Select(g => g.detach().to(float64).norm())).norm().item<double>();
        if (maxNorm > 0 && total > maxNorm)
            using (no_grad()) foreach (var g in grads) g.ScaleInPlace(maxNorm / (total + 1e-6));
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
