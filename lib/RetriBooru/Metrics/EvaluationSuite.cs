using System.Globalization;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
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
/// The suite holds what does not depend on the model: the embedders, the attribute probe and the baselines, so several
/// models (RetriNet, the text-only baseline, ...) are scored against the same yardsticks.
/// <para>Generated images have no face box or mask: identity compares, per concept, the best of 14 windows of the
/// generated image (or the whole image) with that concept's crops (<see cref="EvaluationViews"/>). The baselines are
/// computed the same way from real images, which keeps the scores calibrated (see <see cref="EvaluationBaselines"/>).</para>
/// </summary>
public sealed class EvaluationSuite : IDisposable
{
    readonly string _datasetDir;
    readonly long _seed;
    readonly EvaluationSuiteOptions _options;
    readonly EvaluationEmbeddingCache _embedder;
    readonly LeakageScorer _leakage;
    readonly PreparedProbe? _probe;
    readonly AttributeGroundTruth? _truth;
    readonly MiniLmTextEmbedder? _minilm;
    readonly IAnswerDistance _distance;
    readonly IReadOnlyList<TrainingExample> _calibration;
    readonly List<string> _notes = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline> _identityBaselines = [];
    readonly Dictionary<int, EvaluationBaselines.IdentityBaseline?> _attributeBaselines = [];
    readonly Dictionary<(int Size, string Character), double?> _leakageBaselines = [];

    EvaluationSuite(string datasetDir, long seed, EvaluationSuiteOptions options, EvaluationEmbeddingCache embedder, PreparedProbe? probe, AttributeGroundTruth? truth,
        MiniLmTextEmbedder? minilm, IReadOnlyList<TrainingExample> calibration, List<string> notes)
    {
        _datasetDir = datasetDir;
        _seed = seed;
        _options = options;
        _embedder = embedder;
        _leakage = new LeakageScorer(embedder);
        _probe = probe;
        _truth = truth;
        _minilm = minilm;
        _distance = minilm is null ? new ExactMatchAnswerDistance() : new EmbeddingAnswerDistance(minilm);
        _calibration = calibration;
        _notes.AddRange(notes);
    }

    // For SwdWalkthrough (same yardsticks as Evaluate).
    internal IImageEmbedder IdentityEmbedder => _embedder;
    internal IVqaProvider? Vqa => _probe?.Probe;
    internal IAnswerDistance AnswerDistance => _distance;
    internal double IdentityBaselineValue(int imageSize) => IdentityBaselineFor(imageSize).Value;
    /// <summary>SWD's baseline for attribute-agreement weights, or null when SWD weighs by the embedder (no ground truth, or the option says so).</summary>
    internal double? AttributeBaselineValue(int imageSize) => _options.SwdIdentity == "attributes" ? AttributeBaselineFor(imageSize)?.Value : null;
    internal AttributeGroundTruth? GroundTruth => _truth;
    internal string DatasetDir => _datasetDir;
    internal string IdentityView => _options.IdentityView;

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
        var embedder = new EvaluationEmbeddingCache(new ResNet18Embedder(intraOpThreads: options.EmbedderThreads));
        PreparedProbe? probe = null;
        MiniLmTextEmbedder? minilm = null;
        try
        {
            probe = EvaluationProbe.Prepare(datasetDir, records, options.ImageSize, options.Probe with { Seed = seed }, options.CacheProbe, notes, progress);
            if (probe is null && !notes.Any(n => n.Contains("probe", StringComparison.Ordinal)))
                notes.Add($"{datasetDir} has no {Data.Synth.SynthAttributesFile.FileName} (not a synthetic dataset): no attribute probe, so prompt_consistency and swd (which needs the probe as VQA) are omitted");
            if (options.AnswerDistance == "minilm")
            {
                progress?.Report("loading all-MiniLM-L6-v2 (ONNX Runtime)");
                minilm = new MiniLmTextEmbedder(options.EmbedderThreads);
            }
            var truth = probe is null ? null : AttributeGroundTruth.FromSynth(Data.Synth.SynthAttributesFile.Read(datasetDir));
            var suite = new EvaluationSuite(datasetDir, seed, options, embedder, probe, truth, minilm, calibration, notes);
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

    public EvaluationResult Evaluate(string modelName, DiffusionModel model, IReferenceConditionedModel branch, string datasetDir, string scheme,
        EvaluationOptions options, string outDir, IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        if (string.IsNullOrWhiteSpace(modelName)) throw new ArgumentException("the model needs a name for the results table", nameof(modelName));
        TorchRuntime.EnsureLoaded();
        var notes = new List<string>(_notes);
        if (Path.GetFullPath(datasetDir) != Path.GetFullPath(_datasetDir))
            notes.Add($"baselines and probe come from {Path.GetFullPath(_datasetDir)}, the reference sets from {Path.GetFullPath(datasetDir)}");
        var manifestPath = options.ManifestPath ?? Path.Combine(datasetDir, DatasetLayout.ManifestPath(scheme));
        var manifest = ManifestReader.Read(manifestPath);
        var records = DatasetLayout.ReadRecords(datasetDir);
        var sets = EvaluationSets.Choose(manifest, records, options.Split, options.ReferenceSets, options.Seed);
        if (sets.Count == 0)
            throw new InvalidDataException($"{manifestPath}: no reference set for split '{options.Split}' (it draws on manifest split '{EvaluationSets.ManifestSplit(options.Split)}'{(options.Split == EvaluationSplits.Composition ? " and needs characters with face crops in another outfit" : "")})");
        if (sets.Count < options.ReferenceSets) notes.Add($"only {sets.Count} of the {options.ReferenceSets} requested reference sets exist for split '{options.Split}'");
        if (_probe is not null && options.SamplesPerReference < 2) notes.Add("swd needs at least 2 samples per reference set; it is omitted");

        int size = model.Config.ImageSize;
        var identityBaseline = IdentityBaselineFor(size);
        var scorer = new EvaluationScorer(_embedder, (IVqaProvider?)_probe?.Probe ?? NoAnswers.Instance, _distance, identityBaseline.Value, _probe?.Probe, leakageEmbedder: _embedder,
            attributeBaseline: AttributeBaselineValue(size));
        var table = new ResultsTable(options.Seed, options.BootstrapResamples);
        var outputs = new List<(string, IReadOnlyList<string>, IReadOnlyList<string>)>();
        var leakageBaselines = new SortedDictionary<string, double?>(StringComparer.Ordinal);
        Directory.CreateDirectory(outDir);
        int total = sets.Count * options.SamplesPerReference, done = 0, skippedSets = 0;
        foreach (var set in sets)
        {
            var prompt = PromptViews.Apply(options.PromptView, set.Prompt, set.Character);
            var referencePaths = set.References.Select(r => ManifestReader.Resolve(datasetDir, r.Image)).ToList();
            var scoringRefs = new List<ScoringReference>();
            var samples = new List<ScoringSample>();
            var samplePaths = new List<string>();
            try
            {
                using var setScope = NewDisposeScope();
                var crops = new List<ReferenceCrop>();
                try
                {
                    for (int i = 0; i < set.References.Count; i++)
                    {
                        scoringRefs.Add(new ScoringReference(ImageTensor.LoadBitmap(referencePaths[i]), set.References[i].Concept));
                        crops.Add(new ReferenceCrop(ImageTensor.Load(referencePaths[i], size), set.References[i].Concept, set.References[i].SourceId));
                    }
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    notes.Add($"reference set {set.Id} skipped: {e.Message}");
                    skippedSets++;
                    done += options.SamplesPerReference;
                    progress?.Report((done, total));
                    continue;
                }
                for (int k = 0; k < options.SamplesPerReference; k++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    long seed = SampleSeed(options.Seed, set.Id, k);
                    SKBitmap image;
                    using (NewDisposeScope())
                    {
                        var generated = ReferenceSampler.Generate(model, branch, [prompt], [crops], options.Sampling with { Seed = seed });
                        image = ImageTensor.ToBitmap(generated[0]);
                    }
                    string? relative = null;
                    if (options.SaveImages)
                    {
                        relative = $"samples/{set.Id}/{k}.png";
                        var full = Path.Combine(outDir, relative);
                        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                        AtomicFile.WriteAllBytes(full, ImageTensor.EncodePng(image));
                        samplePaths.Add(full);
                    }
                    var faceBox = EvaluationViews.Locate(_options.IdentityView, _embedder, image, scoringRefs.Where(r => r.IsFace).Select(r => r.Image).ToList());
                    var clothesBox = EvaluationViews.Locate(_options.IdentityView, _embedder, image, scoringRefs.Where(r => r.IsClothing).Select(r => r.Image).ToList());
                    samples.Add(new ScoringSample(image, k, seed, relative, faceBox, clothesBox));
                    progress?.Report((++done, total));
                }
                double? beta = LeakageBaselineFor(size, set.Character, notes);
                leakageBaselines[set.Character] = beta;
                if (beta is null) notes.Add($"no leakage baseline for {set.Character}: leakage omitted for set {set.Id}");
                var expected = _truth?.Expected(set.References.Select(r => (r.Concept, r.SourceId)));
                var scoringSet = new ScoringReferenceSet(set.Id, scoringRefs, prompt, PromptTags(prompt), beta, expected);
                // Without a VQA provider SWD cannot be computed: scoring one sample at a time skips it (and nothing else).
                var rows = _probe is null
                    ? samples.SelectMany(s => scorer.Score(modelName, options.Split, scoringSet, [s], cancellationToken)).ToList()
                    : scorer.Score(modelName, options.Split, scoringSet, samples, cancellationToken);
                foreach (var row in rows) table.Add(Renamed(row));
                outputs.Add((set.Id, referencePaths, samplePaths));
            }
            finally
            {
                foreach (var r in scoringRefs) r.Image.Dispose();
                foreach (var s in samples) s.Image.Dispose();
            }
        }
        if (table.Rows.Count == 0) throw new InvalidDataException($"{manifestPath}: none of the {sets.Count} reference sets could be read (see the skipped files above)");
        if (skippedSets > 0) notes.Add($"{skippedSets} of {sets.Count} reference sets skipped because a file could not be read");

        var config = Config(modelName, model, branch, datasetDir, manifestPath, scheme, options, identityBaseline, leakageBaselines, sets, notes);
        table.Write(outDir, config, GitCommit.Describe() ?? GitCommit.Describe(AppContext.BaseDirectory));
        var summary = table.Summaries().Single().Scores.ToDictionary(s => s.Name, s => s);
        return new EvaluationResult(modelName, options.Split, table.Rows.ToList(), summary, outputs, notes);
    }

    /// <summary>Embedders, answer distance, probe accuracy and baselines (for provenance).</summary>
    public IReadOnlyDictionary<string, string> Describe()
    {
        var d = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["dataset"] = Path.GetFullPath(_datasetDir),
            ["seed"] = Num(_seed),
            ["image_embedder"] = _embedder.Name,
            ["text_embedder"] = _minilm?.Name ?? "none (answer distance is exact match)",
            ["answer_distance"] = _distance.Name,
            ["vqa"] = _probe is null ? "none" : _probe.Probe.Name,
            ["identity_view"] = _options.IdentityView == EvaluationViews.Whole
                ? "whole generated image (no face box or mask) vs face crops and vs clothes crops"
                : "best of 14 windows per concept (whole, 3x3 half-size, 2x2 three-quarter) vs that concept's crops",
        };
        if (_probe is { } p)
        {
            d["probe_accuracy"] = Num(p.Report.MeanHeldOutAccuracy);
            foreach (var (name, accuracy) in p.Report.HeldOutAccuracy) d["probe_accuracy/" + name] = Num(accuracy);
            d["probe_train_images"] = Num(p.Report.TrainCount);
            d["probe_heldout_images"] = Num(p.Report.HeldOutCount);
            d["probe_skipped_images"] = Num(p.SkippedImages);
            d["probe_source"] = p.FromCache ? "cache " + Path.Combine(_datasetDir, EvaluationProbe.Folder) : "trained";
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
            _identityBaselines[size] = baseline = EvaluationBaselines.Identity(_embedder, _datasetDir, _calibration, size, _options.IdentityBaselineExamples, _options.IdentityBaselineQuantile, _seed, _notes, _options.IdentityView);
        return baseline;
    }

    EvaluationBaselines.IdentityBaseline? AttributeBaselineFor(int size)
    {
        if (_probe is null || _truth is null) return null;
        if (!_attributeBaselines.TryGetValue(size, out var baseline))
            _attributeBaselines[size] = baseline = EvaluationBaselines.Attributes(_probe.Probe, _truth, _datasetDir, _calibration, size, _options.IdentityBaselineExamples, _options.IdentityBaselineQuantile, _seed, _notes);
        return baseline;
    }

    double? LeakageBaselineFor(int size, string character, List<string> notes)
    {
        if (!_leakageBaselines.TryGetValue((size, character), out var beta))
        {
            var problems = new List<string>();
            _leakageBaselines[(size, character)] = beta = EvaluationBaselines.Leakage(_leakage, _datasetDir, _calibration, character, size, _options.LeakageBaselineExamples, _seed, problems);
            notes.AddRange(problems.Select(p => "leakage baseline: " + p));
        }
        return beta;
    }

    JsonObject Config(string modelName, DiffusionModel model, IReferenceConditionedModel branch, string datasetDir, string manifestPath, string scheme,
        EvaluationOptions options, EvaluationBaselines.IdentityBaseline identity, IReadOnlyDictionary<string, double?> leakage, IReadOnlyList<EvaluationSet> sets, IReadOnlyList<string> notes)
    {
        var suite = new JsonObject();
        // Baselines get their own entries below; whether the probe was trained now or loaded from its cache is left out
        // (the cached weights are exact copies), so the file's bytes depend only on the inputs.
        foreach (var (k, v) in Describe())
            if (!k.StartsWith("leakage_baseline@", StringComparison.Ordinal) && !k.StartsWith("identity_baseline", StringComparison.Ordinal) && !k.StartsWith("identity_same", StringComparison.Ordinal) && !k.StartsWith("identity_cross", StringComparison.Ordinal) && !k.StartsWith("attribute_agreement_", StringComparison.Ordinal) && k != "probe_source") suite[k] = v;
        var leak = new JsonObject();
        foreach (var (character, beta) in leakage) leak[character] = beta;
        return new JsonObject
        {
            ["protocol"] = "retribooru-evaluate/1",
            ["model"] = modelName,
            ["branch"] = branch.Kind,
            ["model_config"] = model.Config.Name,
            ["image_size"] = model.Config.ImageSize,
            ["dataset"] = Path.GetFullPath(datasetDir),
            ["manifest"] = Path.GetFullPath(manifestPath),
            ["scheme"] = scheme,
            ["split"] = options.Split,
            ["manifest_split"] = EvaluationSets.ManifestSplit(options.Split),
            ["reference_sets_requested"] = options.ReferenceSets,
            ["reference_sets"] = new JsonArray(sets.Select(s => (JsonNode?)new JsonObject
            {
                ["id"] = s.Id, ["character"] = s.Character, ["clothing_id"] = s.ClothingId, ["prompt"] = s.Prompt,
                ["generation_prompt"] = PromptViews.Apply(options.PromptView, s.Prompt, s.Character),
                ["references"] = new JsonArray(s.References.Select(r => (JsonNode?)new JsonObject { ["concept"] = r.Concept, ["image"] = r.Image }).ToArray()),
                ["face_clothing_ids"] = new JsonArray(s.FaceClothingIds.Select(c => (JsonNode?)c).ToArray()),
            }).ToArray()),
            ["prompt_view"] = options.PromptView,
            ["samples_per_reference"] = options.SamplesPerReference,
            ["seed"] = options.Seed,
            ["sample_seed_rule"] = "SHA-256 of \"<seed>/evaluation-sample/<set id>/<k>\" (Seeding.DeriveLong), recorded per row",
            ["sampling"] = new JsonObject
            {
                ["sampler"] = "ddim", ["steps"] = options.Sampling.Steps, ["text_scale"] = options.Sampling.TextScale,
                ["reference_scale"] = options.Sampling.ReferenceScale, ["eta"] = options.Sampling.Eta,
            },
            ["torch_threads"] = TorchRuntime.Threads,
            ["suite"] = suite,
            ["identity_baseline"] = new JsonObject { ["value"] = identity.Value, ["pairs"] = identity.Pairs, ["examples"] = identity.Examples, ["quantile"] = identity.Quantile,
                ["same_character_mean"] = identity.SameCharacterMean, ["cross_character_median"] = identity.CrossCharacterMedian },
            ["leakage_baselines"] = leak,
            ["attribute_agreement_baseline"] = AttributeBaselineFor(model.Config.ImageSize) is { } ab ? new JsonObject { ["value"] = ab.Value, ["pairs"] = ab.Pairs, ["examples"] = ab.Examples,
                ["quantile"] = ab.Quantile, ["same_character_mean"] = ab.SameCharacterMean, ["cross_character_median"] = ab.CrossCharacterMedian } : null,
            ["notes"] = new JsonArray(notes.Select(n => (JsonNode?)n).ToArray()),
        };
    }

    /// <summary>The scorer's <c>identity_clothing</c> is reported under the concept word: <c>identity_clothes</c>.</summary>
    static ResultRow Renamed(ResultRow row) => row.Scores.ContainsKey("identity_clothing")
        ? row with { Scores = row.Scores.ToDictionary(kv => kv.Key == "identity_clothing" ? "identity_clothes" : kv.Key, kv => kv.Value) }
        : row;

    static IReadOnlyList<string> PromptTags(string prompt) => prompt.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

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
