using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using RetriBooru.Data.Synth;
using RetriBooru.Diffusion;
using RetriBooru.Metrics;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Settings;
using RetriBooru.Weights;

namespace RetriBooru.Experiments;

/// <summary>How to run a spec (not part of the science: where files go, what to reuse).</summary>
public sealed record RunOptions
{
    public bool Quick { get; init; }
    public string RunsRoot { get; init; } = "runs";
    /// <summary>Content-addressed stage outputs shared between runs (default RUNS/.cache).</summary>
    public string? CacheRoot { get; init; }
    /// <summary>Run only this sweep point (scale-out: one job per point); null = all points.</summary>
    public int? OnlyPoint { get; init; }
    /// <summary>Recompute every stage even when a finished one exists.</summary>
    public bool Force { get; init; }
    public int Threads { get; init; } = TorchRuntime.DefaultThreads;
    public string Device { get; init; } = "cpu";
    public string? SpecFile { get; init; }
    /// <summary>The `--set PATH=VALUE` overrides the spec was loaded with (recorded in run.json so the run can be repeated).</summary>
    public IReadOnlyList<string> Overrides { get; init; } = [];
}

/// <summary>Something the runner did, for progress displays (stage start/end, training steps, evaluation sets).</summary>
public sealed record RunnerEvent(string Stage, string Message, double? Fraction = null);

/// <summary>Wall time of one stage and whether a finished result was reused.</summary>
/// <param name="Folder">The stage's folder in the cache (null in runs made before it was recorded, and for stages kept elsewhere).</param>
public sealed record StageTiming([property: JsonPropertyName("stage")] string Stage, [property: JsonPropertyName("seconds")] double Seconds, [property: JsonPropertyName("reused")] bool Reused,
    [property: JsonPropertyName("folder"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Folder = null);

/// <summary>One scored model: sweep point, family, scheme, split, its summary and where its files are.</summary>
public sealed record ModelEvaluation
{
    [JsonPropertyName("point")] public int Point { get; init; }
    [JsonPropertyName("point_label")] public string PointLabel { get; init; } = "";
    [JsonPropertyName("model")] public string Model { get; init; } = "";
    [JsonPropertyName("scheme")] public string Scheme { get; init; } = "b";
    [JsonPropertyName("split")] public string Split { get; init; } = "";
    [JsonPropertyName("summary")] public IReadOnlyDictionary<string, ScoreSummary> Summary { get; init; } = new Dictionary<string, ScoreSummary>();
    [JsonPropertyName("per_set")] public IReadOnlyList<IReadOnlyDictionary<string, double>> PerSet { get; init; } = [];
    [JsonPropertyName("sets")] public IReadOnlyList<EvaluatedSet> Sets { get; init; } = [];
    [JsonPropertyName("results_dir")] public string ResultsDir { get; init; } = "";
    [JsonPropertyName("loss_log")] public string LossLog { get; init; } = "";
    [JsonPropertyName("notes")] public IReadOnlyList<string> Notes { get; init; } = [];
    /// <summary>
    /// True in a file whose paths (results, loss log, references, samples) are relative to the file's own folder. Older
    /// files hold absolute paths or paths relative to the folder the run was started from.
    /// </summary>
    [JsonPropertyName("paths_relative")] public bool PathsRelative { get; init; }

    /// <summary>For a JSON file in <paramref name="folder"/>: every path relative to it, so the file reads the same from any working folder.</summary>
    public ModelEvaluation RelativeTo(string folder)
    {
        var full = Path.GetFullPath(folder);
        return MapPaths(p => Path.GetRelativePath(full, Path.GetFullPath(p))) with { PathsRelative = true };
    }

    /// <summary>Read from a JSON file in <paramref name="folder"/>: every path made full (an older file's paths still resolve, see <see cref="PathsRelative"/>).</summary>
    public ModelEvaluation ResolvedAgainst(string folder) => MapPaths(p => Resolve(Path.GetFullPath(folder), p)) with { PathsRelative = false };

    ModelEvaluation MapPaths(Func<string, string> map) => this with
    {
        ResultsDir = ResultsDir == "" ? "" : map(ResultsDir),
        LossLog = LossLog == "" ? "" : map(LossLog),
        Sets = Sets.Select(s => s with { References = s.References.Select(map).ToList(), Samples = s.Samples.Select(map).ToList() }).ToList(),
    };

    string Resolve(string folder, string path)
    {
        if (Path.IsPathRooted(path)) return path;
        if (PathsRelative) return Path.GetFullPath(Path.Combine(folder, path));
        // An older file: relative to where the run was started, usually an ancestor of the run folder (RUNS/ID), else here.
        var starts = new List<string>();
        for (var dir = new DirectoryInfo(folder); dir is not null; dir = dir.Parent) starts.Add(dir.FullName);
        return starts.Prepend(Environment.CurrentDirectory).Select(d => Path.GetFullPath(Path.Combine(d, path)))
            .FirstOrDefault(p => File.Exists(p) || Directory.Exists(p)) ?? Path.GetFullPath(path);
    }

    /// <summary>Writes a run's evaluations (evaluations.json), paths relative to the run folder.</summary>
    public static void Write(RunFolder run, IEnumerable<ModelEvaluation> evaluations) =>
        run.WriteJson(FileName, evaluations.Select(e => e.RelativeTo(run.Path)).ToList());

    /// <summary>Reads a run's evaluations.json with full paths.</summary>
    public static IReadOnlyList<ModelEvaluation> Read(string runFolder)
    {
        var path = Path.Combine(runFolder, FileName);
        return JsonSerializer.Deserialize<List<ModelEvaluation>>(File.ReadAllText(path), WorkbenchJson.Lines)!.Select(e => e.ResolvedAgainst(runFolder)).ToList();
    }

    public const string FileName = "evaluations.json";

    /// <summary>A label for charts and tables: model, scheme when it matters, sweep point when there is a sweep.</summary>
    [JsonIgnore] public string Label => $"{Model}{(Scheme == "a" ? " (scheme a)" : "")}{(PointLabel is "" or "default" ? "" : $" [{PointLabel}]")}";
}

public sealed record EvaluatedSet(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("references")] IReadOnlyList<string> References,
    [property: JsonPropertyName("samples")] IReadOnlyList<string> Samples);

/// <summary>Everything a run produced.</summary>
public sealed record ExperimentResult(RunFolder Run, IReadOnlyList<StageTiming> Timings, IReadOnlyList<ModelEvaluation> Evaluations, string ReportPath);

/// <summary>
/// Runs an experiment spec end to end: dataset, base model, one trained model per (sweep point, model family,
/// scheme), evaluation per split, report. Every stage is content-addressed (its folder is named by the hash of
/// its inputs) in a cache shared between runs, so a rerun reuses finished stages and an interrupted training
/// stage resumes from its checkpoint. The run folder gets the spec, resolved config, seeds, provenance,
/// timings, evaluations and the HTML report; nothing is overwritten.
/// </summary>
public sealed class ExperimentRunner(ExperimentSpec spec, RunOptions options, IProgress<RunnerEvent>? progress = null)
{
    readonly List<StageTiming> _timings = [];

    /// <summary>
    /// Part of every evaluation stage's cache key: stage keys hash configs, not code, so a change to how samples
    /// are scored must bump this to keep old cached scores from being reused.
    /// </summary>
    public const string EvaluationProtocolVersion = EvaluationProtocol.Version;

    /// <summary>
    /// Part of every training stage's cache key, with the thread count: how a step computes its numbers (2: flat parameter
    /// buffer, each batch split across the threads with its loss summed per part, float32 gradient norm). A change that moves
    /// a trained model's numbers must bump this; the thread count is in the key because the split follows it.
    /// </summary>
    public const string TrainingNumericsVersion = "3 (flat buffer, batch split across threads, U-Net conv_out by unfold + matmul)";

    /// <summary>
    /// The numerics a training stage is keyed by: oneDNN's kernels round differently from libtorch's own, so stages
    /// trained with <c>RETRIBOORU_ONEDNN=0</c> are not reused with oneDNN on, nor the other way round.
    /// </summary>
    public static string TrainingNumerics => Runtime.OneDnn.Enabled == false ? TrainingNumericsVersion + ", oneDNN off" : TrainingNumericsVersion;

    /// <summary>
    /// The numerics a model's training stage is keyed by: <see cref="TrainingNumerics"/>, and for IP-Adapter-style models
    /// that their batches are split across the threads too (since 2026-12-02; before, they ran on one thread, so their
    /// stages trained then are not reused). The other models' keys are unchanged.
    /// </summary>
    public static string TrainingNumericsOf(ModelKind kind) =>
        kind == ModelKind.IpAdapter ? TrainingNumerics + ", IP-Adapter batch split across threads" : TrainingNumerics;

    /// <summary>How the base model's EMA decays (part of the base stage's key when EMA is on: changing the rule must retrain).</summary>
    public const string EmaRule = "min(decay, (1+step)/(10+step))";

    public ExperimentResult Run(CancellationToken cancellation = default)
    {
        TorchRuntime.SetDeterministic(true, options.Threads);
        var device = TorchRuntime.ResolveDevice(options.Device);
        var points = SpecLoader.Expand(spec);
        if (options.OnlyPoint is int only && (only < 0 || only >= points.Count))
            throw new ArgumentOutOfRangeException(nameof(options), $"--only-point {only}: the spec has {points.Count} point(s), 0..{points.Count - 1}");
        var selected = options.OnlyPoint is int k ? [points[k]] : points;
        var cache = new StageCache(options.CacheRoot ?? Path.Combine(options.RunsRoot, ".cache"));
        var run = RunFolder.Create(options.RunsRoot, spec.Name + (options.OnlyPoint is int p ? $"-point{p}" : ""), spec.Seed, "experiment", options.SpecFile,
            options.Quick, selected.Select(x => x.Index).ToList(), Provenance.Capture(device: device.ToString()), overrides: options.Overrides);
        run.WriteJson("spec.json", spec);
        run.WriteJson("resolved_points.json", selected.Select(x => new { index = x.Index, label = x.Label, spec = x.Spec }));
        try
        {
            var dataset = Stage("dataset", cache, DatasetInputs(), folder => BuildDataset(folder, cancellation), resumable: false);
            var baseModel = spec.Base.Checkpoint is { } checkpoint ? PretrainedBase.Resolve(checkpoint, cache.Root) : Path.Combine(
                Stage("base", cache, new { dataset = DatasetContent(dataset, null), spec.Base, spec.Seed, emaRule = spec.Base.Ema is null ? null : EmaRule, numerics = TrainingNumerics, threads = options.Threads }, folder => TrainBase(dataset, folder, device, cancellation), resumable: true), "model");
            // Later stages are keyed by the base's content, not its path: a base copied elsewhere, exported or shipped
            // (builtin:) reuses the models trained on it, and a changed base retrains them.
            var baseIdentity = PretrainedBase.ContentIdentity(baseModel);
            if (spec.Base.Checkpoint is { } given) CheckPretrainedBase(given, baseModel, baseIdentity, dataset, run);
            var evaluations = new List<ModelEvaluation>();
            // Created when the first evaluation stage has to run: a rerun whose evaluations are all cached skips its setup.
            using (var suite = new OnDemand<EvaluationSuite>(() =>
            {
                var created = TimedValue("evaluation-suite", () => EvaluationSuite.Create(dataset, spec.Evaluate.Suite() with { ProbeWorldCache = Path.Combine(cache.Root, ProbeWorldCacheFolder) }, spec.Seed, Relay("evaluation-suite")));
                run.WriteJson(SuiteFile, created.Provenance());
                return created;
            }))
            {
                foreach (var point in selected)
                    foreach (var kind in point.Spec.Models)
                        foreach (var referenceScheme in kind == ModelKind.TextOnly ? [ReferenceScheme.B] : point.Spec.Schemes)
                        {
                            cancellation.ThrowIfCancellationRequested();
                            // Names, not enum values, in stage keys, seeds and folder names: the same strings as before the enums.
                            string model = kind.Name(), scheme = referenceScheme.Name();
                            var trainInputs = new { dataset = DatasetContent(dataset, referenceScheme), baseModel = baseIdentity, Train = TrainKey(point.Spec.Train, kind), model, scheme, spec.Seed, numerics = TrainingNumericsOf(kind), threads = options.Threads };
                            var trained = Stage($"train-{model}-{scheme}-p{point.Index}", cache, trainInputs,
                                folder => TrainModel(dataset, baseModel, point.Spec, kind, referenceScheme, folder, device, cancellation), resumable: true, stageFamily: "train");
                            foreach (var split in point.Spec.Evaluate.RunSplits())
                                evaluations.Add(Evaluate(cache, suite, dataset, trained, trainInputs, point, model, scheme, split, device));
                        }
                if (!suite.IsCreated) WriteReusedSuiteDescription(run, evaluations);
            }
            ModelEvaluation.Write(run, evaluations);
            run.WriteJson("timings.json", _timings);
            WriteSummaryCsv(run, evaluations);
            var reportPath = run.File("report.html");
            ReportBuilder.Build(spec, run, evaluations, _timings).Save(reportPath);
            run.Finish("finished", Headline(evaluations));
            return new ExperimentResult(run, _timings, evaluations, reportPath);
        }
        catch (OperationCanceledException)
        {
            run.WriteJson("timings.json", _timings);
            run.Finish("interrupted");
            throw;
        }
        catch (Exception)
        {
            run.WriteJson("timings.json", _timings);
            run.Finish("failed");
            throw;
        }
    }

    /// <summary>
    /// The training settings as a stage key: an option is left out for the models that ignore it, so turning reference
    /// positions on retrains RetriNet alone (text-only and the baselines keep their stages) and the colour shift leaves
    /// text-only's stage as it was.
    /// </summary>
    public static ReferenceTrainingOptions TrainKey(ReferenceTrainingOptions train, ModelKind kind)
    {
        var key = kind == ModelKind.RetriNet ? train : train with { ReferencePositions = false };
        return kind == ModelKind.TextOnly ? key with { ColourShift = 0 } : key;
    }

    List<ReferenceScheme> BuiltSchemes() => spec.Schemes.Append(ReferenceScheme.B).Distinct().Order().ToList();

    // Spellings in the key (as before the enums, so cached datasets are still found).
    object DatasetInputs() => new { spec.Dataset, schemes = BuiltSchemes().Select(s => s.Name()).ToList() };

    /// <summary>
    /// What a stage after the dataset reads of it, for its key: the dataset's settings and the content of its records,
    /// ground truth, the evaluation's manifest (scheme b) and the trained scheme's manifest. Not the list of schemes the
    /// dataset was built with: a dataset that also holds scheme a (the leakage study's) has the same records and scheme-b
    /// manifest as the quickstart's, so its base, text-only and scheme-b models and their evaluations are the same stages.
    /// </summary>
    object DatasetContent(string dataset, ReferenceScheme? trainedScheme) => new
    {
        spec.Dataset,
        records = ContentHash(dataset, DatasetLayout.RecordsFile),
        attributes = ContentHash(dataset, SynthAttributesFile.FileName),
        evaluationManifest = ContentHash(dataset, DatasetLayout.ManifestPath(ReferenceScheme.B)),
        trainedManifest = trainedScheme is { } scheme ? ContentHash(dataset, DatasetLayout.ManifestPath(scheme)) : null,
    };

    /// <summary>SHA-256 of a dataset file (hex), or "absent"; read once per run (a finished dataset stage never changes).</summary>
    string ContentHash(string dataset, string relative)
    {
        var path = SafePath.Under(dataset, relative, "dataset file");
        if (_contentHashes.TryGetValue(path, out var known)) return known;
        string hash = "absent";
        if (File.Exists(path))
        {
            using var stream = RegularFile.OpenRead(path, "dataset file");
            hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream));
        }
        return _contentHashes[path] = hash;
    }

    readonly Dictionary<string, string> _contentHashes = new(StringComparer.Ordinal);

    string BuildDataset(string folder, CancellationToken cancellation)
    {
        var build = spec.Dataset.Build(BuiltSchemes());
        // One progress stage per dataset phase (generate, crops, ...) with its fraction, so a log shows every 10% of a
        // phase instead of every file.
        // Parallel stages report from worker threads: one at a time, in order, to the (single-threaded) listener.
        var gate = new object();
        var relay = new SyncProgress<DatasetProgress>(p =>
        {
            lock (gate)
            {
                // A phase of unknown length (the scan counts files as it finds them): a line every 100 files.
                if (p.Total <= 0) { if (p.Done % 100 == 0) progress?.Report(new RunnerEvent($"dataset/{p.Stage}", $"{p.Done} files")); }
                else progress?.Report(new RunnerEvent($"dataset/{p.Stage}", $"{p.Done}/{p.Total}", p.Fraction));
            }
        });
        var result = spec.Dataset.Source is string source
            ? DatasetBuilder.Build(source, folder, build, relay, cancellation)
            : SynthDataset.Create(folder, spec.Dataset.Synth(), build, relay, cancellation);
        foreach (var note in result.Notes) progress?.Report(new RunnerEvent("dataset", note));
        return folder;
    }

    /// <summary>Under the run folder: the <see cref="PretrainedBase.RecordFile"/> of the base the spec was given.</summary>
    public const string BasePretrainingFile = "base_pretraining.json";

    /// <summary>
    /// The base the spec names instead of training one (<c>base.checkpoint</c>, resolved to <paramref name="folder"/>): one
    /// that records what trained it must be the one the spec would train (same world, recipe and seed), or the run stops
    /// before any training with the reasons and the way out; its record is copied into the run folder.
    /// </summary>
    void CheckPretrainedBase(string checkpoint, string folder, string identity, string dataset, RunFolder run)
    {
        var clock = Stopwatch.StartNew();
        if (PretrainedBase.ReadRecord(folder) is { } record)
        {
            var problems = PretrainedBase.Mismatches(identity, record, DatasetContent(dataset, null), spec.Base, spec.Seed);
            if (problems.Count > 0)
                throw new InvalidOperationException($"base.checkpoint {checkpoint} is not the base this spec would train: {string.Join("; ", problems)}. "
                    + "Add --set base.checkpoint=null to train the spec's own base (the base block's recipe), or undo the change");
            run.WriteJson(BasePretrainingFile, record);
        }
        _timings.Add(new StageTiming($"base ({checkpoint})", clock.Elapsed.TotalSeconds, true, folder));
        progress?.Report(new RunnerEvent("base", $"pretrained: {checkpoint} ({folder})", 1));
    }

    void TrainBase(string dataset, string folder, TorchSharp.torch.Device device, CancellationToken cancellation)
    {
        var config = spec.Base.FreshModelConfig();
        var source = new DatasetFolderSource(dataset, config.ImageSize, include: spec.Base.Include);
        using var model = BaseModelFactory.Create(config, source, Seeding.DeriveLong(spec.Seed, "base"), device: device);
        // The base model always learns an unconditional branch for classifier-free guidance (base.prompt_dropout, 0.1);
        // train.prompt_dropout is the reference-training knob the ablation sweeps.
        var task = new TextToImageTask(model, source, spec.Base.PromptDropout, minSnrGamma: spec.Base.EffectiveMinSnrGamma, backgroundWeight: spec.Base.BackgroundWeight);
        var trainer = spec.Base.Trainer(Seeding.DeriveLong(spec.Seed, "base-train"));
        if (trainer.BatchNote(task.ExampleCount) is { } note) progress?.Report(new RunnerEvent("base", note));
        bool resume = File.Exists(Path.Combine(folder, DiffusionTrainer.CheckpointFolder, DiffusionTrainer.StateFile));
        var result = new DiffusionTrainer(task, trainer).Run(folder, resume, TrainingRelay("base", spec.Base.Steps), cancellation);
        if (result.RecomputedNote is { } recomputed) progress?.Report(new RunnerEvent("base", recomputed));
        if (!result.Finished) throw new OperationCanceledException("base training interrupted; rerun to resume");
    }

    void TrainModel(string dataset, string baseModel, ExperimentSpec point, ModelKind modelKind, ReferenceScheme referenceScheme, string folder, TorchSharp.torch.Device device, CancellationToken cancellation)
    {
        string kind = modelKind.Name(), scheme = referenceScheme.Name();
        using var model = ModelStore.LoadDiffusers(baseModel, device);
        var branch = ReferenceModels.Create(modelKind, model, point.Train.RetriNet(), ipAdapterScale: point.Train.IpAdapterScale, seed: Seeding.DeriveLong(spec.Seed, $"init/{kind}"));
        var examples = ManifestReader.Read(dataset, referenceScheme, SplitNames.Train);
        using var data = new ReferenceDataset(dataset, examples, model.Config.ImageSize);
        using var task = new ReferenceTrainingTask(model, branch, data, point.Train);
        var trainer = ReferenceTrainerOptions(spec, point.Train, kind, scheme);
        if (trainer.BatchNote(task.ExampleCount) is { } note) progress?.Report(new RunnerEvent($"train {kind}/{scheme}", note));
        bool resume = File.Exists(Path.Combine(folder, DiffusionTrainer.CheckpointFolder, DiffusionTrainer.StateFile));
        var result = new DiffusionTrainer(task, trainer).Run(folder, resume, TrainingRelay($"train {kind}/{scheme}", point.Train.Steps), cancellation);
        if (result.RecomputedNote is { } recomputed) progress?.Report(new RunnerEvent($"train {kind}/{scheme}", recomputed));
        if (!result.Finished) throw new OperationCanceledException($"training of {kind} interrupted; rerun to resume");
    }

    /// <summary>
    /// The trainer options `run` gives a reference model: the spec's train settings with the seed derived for the model
    /// and scheme. `train` resolves the same settings through the same <see cref="ReferenceTrainingOptions.Trainer"/>.
    /// </summary>
    public static TrainerOptions ReferenceTrainerOptions(ExperimentSpec spec, ReferenceTrainingOptions train, string kind, string scheme) =>
        train.Trainer(Seeding.DeriveLong(spec.Seed, $"train/{kind}/{scheme}"));

    /// <summary>The suite's description (embedders, probe, baselines and where each came from), in the run folder and in each evaluation stage.</summary>
    const string SuiteFile = "evaluation_suite.json";
    /// <summary>Under the stage cache: attribute probes of new characters, shared by every dataset they score (<see cref="EvaluationSuiteOptions.ProbeWorldCache"/>).</summary>
    public const string ProbeWorldCacheFolder = "probe-world";

    /// <summary>
    /// Every evaluation was reused, so no suite was created: the run's evaluation_suite.json is the one the first reused
    /// stage recorded (an older stage has none: then a line saying so).
    /// </summary>
    static void WriteReusedSuiteDescription(RunFolder run, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var recorded = evaluations.Select(e => Path.Combine(e.ResultsDir, SuiteFile)).FirstOrDefault(File.Exists);
        var description = recorded is null ? new SortedDictionary<string, string>(StringComparer.Ordinal)
            : JsonSerializer.Deserialize<SortedDictionary<string, string>>(RegularFile.ReadAllText(recorded, "evaluation suite description"))!;
        description["suite_source"] = recorded is null
            ? "not created: every evaluation stage was reused from the cache (they were made before stages recorded their suite)"
            : $"not created: every evaluation stage was reused from the cache; described as recorded in {recorded}";
        run.WriteJson(SuiteFile, description);
    }

    ModelEvaluation Evaluate(StageCache cache, OnDemand<EvaluationSuite> suite, string dataset, string trained, object trainInputs, SweepPoint point, string kind, string scheme, EvaluationSplit evaluationSplit,
        TorchSharp.torch.Device device)
    {
        var evaluation = point.Spec.Evaluate.ForSplit(evaluationSplit, Seeding.DeriveLong(spec.Seed, "evaluate"));
        string split = evaluation.Split.Name();
        var folder = Stage($"evaluate-{kind}-{scheme}-p{point.Index}-{split}", cache, new
        {
            trainInputs, evaluation, suiteSeed = spec.Seed, protocol = EvaluationProtocolVersion,
            // The suite's settings change scores too (where identity is compared, SWD's baseline quantile).
            identityView = spec.Evaluate.IdentityView.Name(), identityQuantile = spec.Evaluate.IdentityQuantile,
            probeWorld = spec.Evaluate.ProbeWorld,
        }, dir =>
        {
            var (model, branch) = ReferenceModelStore.Load(Path.Combine(trained, "model"), device);
            using (model)
            {
                var result = suite.Value.Evaluate(new EvaluatedModel(kind, model, branch), dataset, evaluation, dir,
                    new Progress<(int Done, int Total)>(p => progress?.Report(new RunnerEvent($"evaluate {kind}/{split}", $"{p.Done}/{p.Total}", (double)p.Done / Math.Max(1, p.Total)))));
                progress?.Report(new RunnerEvent($"evaluate {kind}/{split}", result.Timing ?? "", 1));
                var perSet = PerSetScores(result.Rows, result.Sets.Select(x => x.SetId));
                var stored = new ModelEvaluation
                {
                    Point = point.Index, PointLabel = point.Label, Model = kind, Scheme = scheme, Split = split, Summary = result.Summary, PerSet = perSet,
                    Sets = result.Sets.Select(s => new EvaluatedSet(s.SetId, s.ReferencePaths, s.SamplePaths)).ToList(),
                    ResultsDir = dir, LossLog = Path.Combine(trained, DiffusionTrainer.LossLog), Notes = result.Notes,
                };
                AtomicFile.WriteAllText(Path.Combine(dir, "evaluation.json"), JsonSerializer.Serialize(stored.RelativeTo(dir), WorkbenchJson.Pretty));
                AtomicFile.WriteAllText(Path.Combine(dir, SuiteFile), JsonSerializer.Serialize(suite.Value.Provenance(), WorkbenchJson.Pretty));
            }
        }, resumable: false, stageFamily: "evaluate");
        // The stage may have been made by another spec or sweep point with the same inputs (the ablation's 0.1 point is
        // the quickstart's RetriNet): its point and label are this run's, not the maker's.
        return JsonSerializer.Deserialize<ModelEvaluation>(File.ReadAllText(Path.Combine(folder, "evaluation.json")), WorkbenchJson.Lines)!
            .ResolvedAgainst(folder) with { Point = point.Index, PointLabel = point.Label };
    }

    string Stage(string name, StageCache cache, object inputs, Action<string> produce, bool resumable, string? stageFamily = null)
    {
        progress?.Report(new RunnerEvent(name, "starting"));
        var clock = Stopwatch.StartNew();
        var (folder, reused) = cache.Run(stageFamily ?? name, inputs, produce, options.Force, keepPartial: resumable);
        _timings.Add(new StageTiming(name, clock.Elapsed.TotalSeconds, reused, folder));
        progress?.Report(new RunnerEvent(name, reused ? $"reused {folder}" : $"done in {clock.Elapsed.TotalSeconds:F1} s", 1));
        return folder;
    }

    string Stage(string name, StageCache cache, object inputs, Func<string, string> produce, bool resumable) =>
        Stage(name, cache, inputs, folder => { produce(folder); }, resumable);

    T TimedValue<T>(string name, Func<T> create)
    {
        var clock = Stopwatch.StartNew();
        progress?.Report(new RunnerEvent(name, "starting"));
        var value = create();
        _timings.Add(new StageTiming(name, clock.Elapsed.TotalSeconds, false));
        return value;
    }

    IProgress<string> Relay(string stage) => new SyncProgress<string>(m => progress?.Report(new RunnerEvent(stage, m)));

    IProgress<TrainingProgress> TrainingRelay(string stage, int steps) =>
        new SyncProgress<TrainingProgress>(p => progress?.Report(new RunnerEvent(stage, $"step {p.Step + 1}/{steps} loss {p.Loss:F4}", (p.Step + 1.0) / steps)));

    /// <summary>
    /// One score dictionary per reference set, in set order: set-level scores (swd) plus the mean of every
    /// per-sample score (identity, prompt consistency, leakage) of that set, for per-set charts.
    /// </summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, double>> PerSetScores(IReadOnlyList<ResultRow> rows, IEnumerable<string> setIds) =>
        setIds.Select(id =>
        {
            var ofSet = rows.Where(r => r.ReferenceSetId == id).ToList();
            var scores = new Dictionary<string, double>();
            foreach (var key in ofSet.Where(r => r.SampleIndex is not null).SelectMany(r => r.Scores.Keys).Distinct())
                scores[key] = ofSet.Where(r => r.SampleIndex is not null && r.Scores.ContainsKey(key)).Average(r => r.Scores[key]);
            foreach (var row in ofSet.Where(r => r.SampleIndex is null))
                foreach (var (key, value) in row.Scores) scores[key] = value;
            return (IReadOnlyDictionary<string, double>)scores;
        }).ToList();

    public static void WriteSummaryCsv(RunFolder run, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var lines = new List<string> { "point,point_label,model,scheme,split,metric,mean,ci_low,ci_high,n" };
        foreach (var e in evaluations)
            foreach (var (metric, s) in e.Summary.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                lines.Add(string.Join(',', e.Point, Csv(e.PointLabel), e.Model, e.Scheme, e.Split, metric,
                    s.Mean.ToString("R"), s.Lower.ToString("R"), s.Upper.ToString("R"), s.Count));
        AtomicFile.WriteAllLines(run.File("metrics/summary.csv"), lines);
    }

    static string Csv(string value) => value.Contains(',') || value.Contains('"') ? $"\"{value.Replace("\"", "\"\"")}\"" : value;

    /// <summary>The run's headline numbers for `retribooru runs`: each model's seen-split identity, SWD and image quality (KID, readability).</summary>
    public static Dictionary<string, double> Headline(IReadOnlyList<ModelEvaluation> evaluations)
    {
        var headline = new Dictionary<string, double>();
        foreach (var e in evaluations.Where(e => e.Split == "seen"))
            foreach (var metric in new[] { "attribute_agreement", "identity", "swd", "prompt_consistency", "leakage", "kid", "readability" })
                if (e.Summary.TryGetValue(metric, out var s)) headline[$"{e.Label}:{metric}"] = s.Mean;
        return headline;
    }

    /// <summary>A disposable value made on first use (and disposed only if it was made).</summary>
    sealed class OnDemand<T>(Func<T> create) : IDisposable where T : class, IDisposable
    {
        T? _value;
        public bool IsCreated => _value is not null;
        public T Value => _value ??= create();
        public void Dispose() => _value?.Dispose();
    }
}
