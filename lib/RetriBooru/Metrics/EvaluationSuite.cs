using RetriBooru.Settings;
using System.Globalization;
using RetriBooru.Data;
using RetriBooru.Metrics.Vqa;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using SkiaSharp;
using static TorchSharp.torch;

namespace RetriBooru.Metrics;

/// <summary>
/// The evaluation protocol (issue #6 item 5): for a reference-conditioned model, choose reference sets of a split,
/// generate K samples per set with recorded seeds, score them (identity per concept, prompt consistency, SWD, leakage),
/// and write the results table (rows per sample and set, a summary with 95% bootstrap CIs, config and git commit).
/// Image quality is scored on all samples at once: KID against the real pictures of the split (with its real-vs-real
/// floor and noise-vs-real ceiling) and readability (prompt consistency relative to those real pictures).
/// The suite holds what does not depend on the model: the embedders, the attribute probe and the baselines, so several
/// models (RetriNet, the text-only baseline, ...) are scored against the same yardsticks.
/// <para><see cref="Evaluate"/> runs in stages: reference sets (<see cref="ReferenceSetChoice"/>) -> sampling
/// (<see cref="SetSampler"/>) -> scoring (<see cref="SetScoring"/>) -> tables and image quality (<see cref="EvaluationTables"/>,
/// <see cref="ImageQualityScoring"/>).</para>
/// <para>Generated images have no face box or mask: identity compares, per concept, the best of 14 windows of the
/// generated image (or the whole image) with that concept's crops (<see cref="EvaluationViews"/>). The baselines are
/// computed the same way from real images, which keeps the scores calibrated (see <see cref="EvaluationBaselines"/>).</para>
/// </summary>
public sealed class EvaluationSuite : IDisposable
{
    readonly CalibrationImages _calibration;
    readonly EvaluationSuiteOptions _options;
    readonly EvaluationEmbeddingCache _embedder;
    // The session _embedder wraps: KID reads its raw pool features, which the cache (normalised embeddings) does not keep.
    readonly ResNet18Embedder _features;
    readonly LeakageScorer _leakage;
    readonly PreparedProbe? _probe;
    readonly AttributeGroundTruth? _truth;
    readonly MiniLmTextEmbedder? _minilm;
    readonly IAnswerDistance _distance;
    readonly List<string> _notes = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline> _identityBaselines = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline?> _attributeBaselines = [];
    readonly Dictionary<(int Size, string Character), double?> _leakageBaselines = [];
    // The real side of image quality, shared by every model of one image size evaluated on one manifest split.
    readonly ImageQualityScoring _quality;
    // The yardsticks above, kept on disk under the dataset so the next suite does not recompute them.
    readonly YardstickCache _yardsticks;

    /// <summary>The models a suite scores with: the image embedder (its cache and the raw ResNet18 session it wraps), the probe, its ground truth and MiniLM.</summary>
    sealed record SuiteModels(EvaluationEmbeddingCache Embedder, ResNet18Embedder Features, PreparedProbe? Probe, AttributeGroundTruth? Truth, MiniLmTextEmbedder? MiniLm);

    EvaluationSuite(CalibrationImages calibration, EvaluationSuiteOptions options, SuiteModels models, IEnumerable<string> notes)
    {
        _calibration = calibration;
        _options = options;
        _embedder = models.Embedder;
        _features = models.Features;
        _leakage = new LeakageScorer(models.Embedder);
        _probe = models.Probe;
        _truth = models.Truth;
        _minilm = models.MiniLm;
        _distance = models.MiniLm is null ? new ExactMatchAnswerDistance() : new EmbeddingAnswerDistance(models.MiniLm);
        _notes.AddRange(notes);
        _yardsticks = new YardstickCache(calibration.DatasetDir, options.CacheBaselines, _notes);
        _quality = new ImageQualityScoring(models.Features, models.Probe?.Probe, calibration.Seed, options, _yardsticks);
    }

    // For SwdWalkthrough (same yardsticks as Evaluate).
    internal IImageEmbedder IdentityEmbedder => _embedder;
    internal IVqaProvider? Vqa => _probe?.Probe;
    internal IAnswerDistance AnswerDistance => _distance;
    internal double IdentityBaselineValue(int imageSize) => IdentityBaselineFor(imageSize).Value;
    /// <summary>SWD's baseline for attribute-agreement weights, or null when SWD weighs by the embedder (no ground truth, or the option says so).</summary>
    internal double? AttributeBaselineValue(int imageSize) => _options.SwdIdentity == "attributes" ? AttributeBaselineFor(imageSize)?.Value : null;
    internal AttributeGroundTruth? GroundTruth => _truth;
    internal string DatasetDir => _calibration.DatasetDir;
    internal IdentityView IdentityView => _options.IdentityView;

    /// <summary>The notes every evaluation with this suite carries (e.g. why probe scores are missing).</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>The trained attribute probe's report, or null without ground truth.</summary>
    public ProbeReport? ProbeReport => _probe?.Report;

    public static EvaluationSuite Create(string datasetDir, long seed = 1, IProgress<string>? progress = null) => Create(datasetDir, new EvaluationSuiteOptions(), seed, progress);

    public static EvaluationSuite Create(string datasetDir, EvaluationSuiteOptions options, long seed = 1, IProgress<string>? progress = null)
    {
        options.Validate();
        if (!Directory.Exists(datasetDir)) throw new DirectoryNotFoundException($"{datasetDir}: dataset folder not found");
        TorchRuntime.EnsureLoaded();
        var records = DatasetLayout.ReadRecords(datasetDir);
        var calibration = ManifestReader.Read(datasetDir, options.Scheme);
        var notes = new List<string>();
        progress?.Report("loading ResNet18 (ONNX Runtime)");
        int embedderThreads = options.EmbedderThreads ?? TorchRuntime.Threads;
        var features = new ResNet18Embedder(intraOpThreads: embedderThreads);
        var embedder = new EvaluationEmbeddingCache(features);
        PreparedProbe? probe = null;
        MiniLmTextEmbedder? minilm = null;
        try
        {
            probe = EvaluationProbe.Prepare(new ProbeData(datasetDir, records, options.ImageSize), options.Probe with { Seed = seed }, options.CacheProbe, notes, progress, options.ProbeWorldPictures, options.ProbeWorldCache);
            if (probe is null && !notes.Any(n => n.Contains("probe", StringComparison.Ordinal)))
                notes.Add($"{datasetDir} has no {Data.Synth.SynthAttributesFile.FileName} (not a synthetic dataset): no attribute probe, so prompt_consistency and swd (which needs the probe as VQA) are omitted");
            if (options.AnswerDistance == "minilm")
            {
                progress?.Report("loading all-MiniLM-L6-v2 (ONNX Runtime)");
                minilm = new MiniLmTextEmbedder(embedderThreads);
            }
            var truth = probe is null ? null : AttributeGroundTruth.FromSynth(Data.Synth.SynthAttributesFile.Read(datasetDir));
            var suite = new EvaluationSuite(new CalibrationImages(datasetDir, calibration, options.ImageSize, seed), options, new SuiteModels(embedder, features, probe, truth, minilm), notes);
            progress?.Report($"identity baseline at {options.ImageSize} px");
            suite.IdentityBaselineFor(options.ImageSize);
            suite.AttributeBaselineFor(options.ImageSize);
            return suite;
        }
        catch
        {
            embedder.Dispose();
            probe?.Probe.Dispose();
            minilm?.Dispose();
            throw;
        }
    }

    /// <summary>Deterministic seed of sample k of a reference set.</summary>
    public static long SampleSeed(long seed, string setId, int k) => Seeding.DeriveLong(seed, $"evaluation-sample/{setId}/{k}");

    /// <summary>
    /// Evaluates one model on the reference sets of <paramref name="options"/>' split: chooses the sets, then per set loads
    /// the references, samples and scores, and finally scores image quality over all samples and writes the tables to
    /// <paramref name="outDir"/>.
    /// </summary>
    public EvaluationResult Evaluate(EvaluatedModel model, string datasetDir, EvaluationOptions options, string outDir,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (string.IsNullOrWhiteSpace(model.Name)) throw new ArgumentException("the model needs a name for the results table", nameof(model));
        TorchRuntime.EnsureLoaded();
        var notes = new List<string>(_notes);
        if (Path.GetFullPath(datasetDir) != Path.GetFullPath(DatasetDir))
            notes.Add($"baselines and probe come from {Path.GetFullPath(DatasetDir)}, the reference sets from {Path.GetFullPath(datasetDir)}");
        var references = ReferenceSetChoice.Choose(datasetDir, options, notes);
        if (_probe is not null && options.SamplesPerReference < 2) notes.Add("swd needs at least 2 samples per reference set; it is omitted");
        var run = new EvaluationRun(model, references, options, outDir);
        int size = run.Model.ImageSize;

        var scoring = new SetScoring(YardsticksFor(size, notes), run, notes, cancellationToken);
        var tables = new EvaluationTables(run, notes);
        using var sampler = new SetSampler(run);
        var counter = new EvaluationProgress(progress, run.TotalSamples);
        foreach (var set in references.Sets)
        {
            // The set's reference crops and every tensor of its sampling and scoring live in this scope.
            using var setScope = NewDisposeScope();
            using var loaded = references.TryLoad(set, size, options.PromptView, notes);
            if (loaded is null)
            {
                counter.Advance(options.SamplesPerReference);
                continue;
            }
            cancellationToken.ThrowIfCancellationRequested();
            using var sampled = sampler.Sample(loaded);
            tables.Add(scoring.Score(loaded, sampled, counter));
        }
        tables.ScoreImageQuality(_quality);
        var times = new StageTimes(sampler.Elapsed, sampler.Threads, scoring.ViewsElapsed, scoring.ScoringElapsed, tables.QualityElapsed);
        return tables.Write(SuiteRecordFor(size), times);
    }

    /// <summary>The yardsticks a model of <paramref name="size"/> px is scored against (baselines computed on first use).</summary>
    ScoringYardsticks YardsticksFor(int size, List<string> notes)
    {
        var identityBaseline = IdentityBaselineFor(size);
        var models = new ScoringModels(_embedder, (IVqaProvider?)_probe?.Probe ?? NoAnswers.Instance, _distance, _probe?.Probe, Leakage: _embedder);
        var scorer = new EvaluationScorer(models, new SwdBaselines(identityBaseline.Value, AttributeBaselineValue(size)));
        return new ScoringYardsticks(scorer, _probe is not null, new SampleReader(_features, _embedder, _options.IdentityView), _truth,
            character => LeakageBaselineFor(size, character, notes));
    }

    /// <summary>What results.json records about this suite for a model of <paramref name="size"/> px.</summary>
    SuiteRecord SuiteRecordFor(int size) => new(Describe(), IdentityBaselineFor(size), AttributeBaselineFor(size));

    /// <summary>Embedders, answer distance, probe accuracy and baselines (for provenance).</summary>
    public IReadOnlyDictionary<string, string> Describe()
    {
        var d = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["dataset"] = Path.GetFullPath(DatasetDir),
            ["seed"] = Num(_calibration.Seed),
            ["image_embedder"] = _embedder.Name,
            ["text_embedder"] = _minilm?.Name ?? "none (answer distance is exact match)",
            ["answer_distance"] = _distance.Name,
            ["vqa"] = _probe is null ? "none" : _probe.Probe.Name,
            ["identity_view"] = _options.IdentityView == IdentityView.Whole
                ? "whole generated image (no face box or mask) vs face crops and vs clothes crops"
                : "best of 14 windows per concept (whole, 3x3 half-size, 2x2 three-quarter) vs that concept's crops",
            ["image_quality"] = $"KID (unbiased MMD^2, kernel (x.y/d + 1)^3 on raw ResNet18 pool features, {_options.KidResamples} bootstrap resamples) vs at most {_options.QualityImages} real images of the split; readability = samples' / real images' prompt consistency",
        };
        if (_probe is { } p)
        {
            d["probe_training"] = p.Training;
            d["probe_unreadable"] = p.Probe.Unreadable.Count == 0 ? "none" : string.Join(", ", p.Probe.Schema.Attributes.Select(a => a.Name).Where(p.Probe.Unreadable.Contains));
            d["probe_accuracy"] = Num(p.Report.MeanHeldOutAccuracy);
            foreach (var (name, accuracy) in p.Report.HeldOutAccuracy) d["probe_accuracy/" + name] = Num(accuracy);
            d["probe_train_images"] = Num(p.Report.TrainCount);
            d["probe_heldout_images"] = Num(p.Report.HeldOutCount);
            d["probe_skipped_images"] = Num(p.SkippedImages);
            d["probe_source"] = p.FromCache ? "cache " + Path.Combine(DatasetDir, EvaluationProbe.Folder)
                : p.WeightsSharedFrom is { } shared ? $"weights from {shared} (trained for another dataset), accuracy measured on this one" : "trained";
        }
        foreach (var (size, b) in _identityBaselines)
        {
            d[$"identity_baseline@{size}"] = Num(b.Value);
            d[$"identity_same_character_mean@{size}"] = Num(b.SameCharacterMean);
            d[$"identity_cross_character_median@{size}"] = Num(b.CrossCharacterMedian);
            d[$"identity_baseline_pairs@{size}"] = $"{b.Pairs} pairs, {b.Examples} examples, {b.Characters} characters";
        }
        foreach (var (size, b) in _attributeBaselines)
        {
            if (b is null) continue;
            d[$"attribute_agreement_baseline@{size}"] = Num(b.Value);
            d[$"attribute_agreement_same_character_mean@{size}"] = Num(b.SameCharacterMean);
            d[$"attribute_agreement_cross_character_median@{size}"] = Num(b.CrossCharacterMedian);
        }
        d["swd_identity"] = _options.SwdIdentity == "attributes" && _attributeBaselines.Values.Any(b => b is not null)
            ? "attribute agreement (probe vs the references' ground truth), baseline attribute_agreement_baseline"
            : "embedding identity (image embedder), baseline identity_baseline";
        foreach (var ((size, character), beta) in _leakageBaselines)
            d[$"leakage_baseline@{size}/{character}"] = beta is double v ? Num(v) : "none";
        return d;
    }

    EvaluationBaselines.IdentityBaseline IdentityBaselineFor(int size)
    {
        if (!_identityBaselines.TryGetValue(size, out var baseline))
        {
            var calibration = CalibrationAt(size);
            var key = CalibrationKey("identity", size, EvaluationBaselines.IdentityExamples(calibration, Draw))
                .With("embedder", YardstickCache.EmbedderIdentity(_embedder)).With("view", _options.IdentityView)
                .With("examples", Draw.Examples).With("quantile", Draw.Quantile);
            _identityBaselines[size] = baseline = _yardsticks.GetOrCompute($"identity_baseline@{size}", key,
                notes => EvaluationBaselines.Identity(_embedder, calibration, Draw, notes, _options.IdentityView), _notes);
        }
        return baseline;
    }

    EvaluationBaselines.IdentityBaseline? AttributeBaselineFor(int size)
    {
        if (_probe is null || _truth is null) return null;
        if (!_attributeBaselines.TryGetValue(size, out var baseline))
        {
            var calibration = CalibrationAt(size);
            // The ground truth is the attributes file; the probe is keyed by its weights, so a retrained probe misses.
            var key = CalibrationKey("attributes", size, EvaluationBaselines.IdentityExamples(calibration, Draw))
                .With("attributes_file", _yardsticks.FileHash(DatasetDir, Data.Synth.SynthAttributesFile.FileName))
                .With("probe", _probe.Probe.Fingerprint()).With("examples", Draw.Examples).With("quantile", Draw.Quantile);
            _attributeBaselines[size] = baseline = _yardsticks.GetOrCompute($"attribute_agreement_baseline@{size}", key,
                notes => EvaluationBaselines.Attributes(_probe.Probe, _truth, calibration, Draw, notes), _notes);
        }
        return baseline;
    }

    double? LeakageBaselineFor(int size, string character, List<string> notes)
    {
        if (!_leakageBaselines.TryGetValue((size, character), out var beta))
        {
            var calibration = CalibrationAt(size);
            var key = CalibrationKey("leakage", size, EvaluationBaselines.LeakageExamples(calibration, character, _options.LeakageBaselineExamples))
                .With("embedder", YardstickCache.EmbedderIdentity(_embedder)).With("character", character).With("examples", _options.LeakageBaselineExamples);
            var problems = new List<string>();
            _leakageBaselines[(size, character)] = beta = _yardsticks.GetOrCompute($"leakage_baseline@{size}/{character}", key,
                computed => EvaluationBaselines.Leakage(_leakage, calibration, character, _options.LeakageBaselineExamples, computed), problems);
            notes.AddRange(problems.Select(p => "leakage baseline: " + p));
        }
        return beta;
    }

    /// <summary>What every calibration yardstick depends on: the manifest, the files its examples read, the size and the seed.</summary>
    YardstickKey CalibrationKey(string kind, int size, IEnumerable<TrainingExample> examples) => new YardstickKey(kind)
        .With("manifest", _yardsticks.FileHash(DatasetDir, DatasetLayout.ManifestPath(_options.Scheme)))
        .WithFiles(_yardsticks, DatasetDir, EvaluationBaselines.FilesOf(examples))
        .With("image_size", size).With("seed", _calibration.Seed);

    CalibrationImages CalibrationAt(int size) => _calibration with { ImageSize = size };

    BaselineDraw Draw => new(_options.IdentityBaselineExamples, _options.IdentityBaselineQuantile);

    /// <summary>
    /// <see cref="Describe"/> plus where each real-image yardstick came from (<c>cache_source/...</c>: the cache file it
    /// was read from, or computed and saved), for evaluation_suite.json; results.json keeps <see cref="Describe"/>'s
    /// numbers only, so a cached and a computed yardstick write the same results.
    /// </summary>
    public IReadOnlyDictionary<string, string> Provenance()
    {
        var d = new SortedDictionary<string, string>(Describe().ToDictionary(), StringComparer.Ordinal);
        foreach (var (label, source) in _yardsticks.Sources) d["cache_source/" + label] = source;
        return d;
    }

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _embedder.Dispose();
        _probe?.Probe.Dispose();
        _minilm?.Dispose();
    }

    /// <summary>The VQA stand-in without a probe: answers nothing (SWD is then not computed).</summary>
    sealed class NoAnswers : IVqaProvider
    {
        public static readonly NoAnswers Instance = new();
        public string Name => "none";
        public bool CanAnswer(VqaQuestion question) => false;
        public IReadOnlyList<VqaAnswer> Ask(SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default) => [];
    }
}
