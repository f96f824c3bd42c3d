using RetriBooru.Settings;
using System.Diagnostics;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics;

/// <summary>
/// What results.json records about the suite an evaluation was scored with: its description (<see cref="EvaluationSuite.Describe"/>),
/// the identity baseline and the attribute-agreement baseline at the model's image size.
/// </summary>
sealed record SuiteRecord(IReadOnlyDictionary<string, string> Description, EvaluationBaselines.IdentityBaseline Identity, EvaluationBaselines.IdentityBaseline? Attributes);

/// <summary>
/// Stage 4 of an evaluation: collects the scored sets into the results table, adds image quality, and writes
/// results.csv and results.json (rows per sample and set, a summary with 95% bootstrap CIs, config and git commit).
/// </summary>
sealed class EvaluationTables(EvaluationRun run, List<string> notes)
{
    readonly ResultsTable _table = new(run.Options.Seed, run.Options.BootstrapResamples);
    readonly List<ScoredSet> _sets = [];
    readonly Stopwatch _quality = new();
    JsonObject? _qualityJson;

    public TimeSpan QualityElapsed => _quality.Elapsed;

    public void Add(ScoredSet set)
    {
        foreach (var row in set.Rows) _table.Add(row);
        _sets.Add(set);
    }

    /// <summary>
    /// Closes the per-set part (fails when no set could be read, notes the skipped ones) and scores image quality on all
    /// samples at once.
    /// </summary>
    public void ScoreImageQuality(ImageQualityScoring quality)
    {
        var sets = run.References.Sets;
        if (_table.Rows.Count == 0) throw new InvalidDataException($"{run.References.ManifestPath}: none of the {sets.Count} reference sets could be read (see the skipped files above)");
        // A set is either scored or skipped (a file could not be read); anything else ends the evaluation.
        int skipped = sets.Count - _sets.Count;
        if (skipped > 0) notes.Add($"{skipped} of {sets.Count} reference sets skipped because a file could not be read");
        _quality.Start();
        _qualityJson = quality.Score(run, _table, _sets.SelectMany(s => s.SampleFeatures).ToList(), notes);
        _quality.Stop();
    }

    /// <summary>Writes OUT/results.csv and OUT/results.json and returns the evaluation's outcome.</summary>
    public EvaluationResult Write(SuiteRecord suite, StageTimes times)
    {
        _table.Write(run.OutDir, Config(suite), GitCommit.Describe() ?? GitCommit.Describe(AppContext.BaseDirectory), _qualityJson);
        var summary = _table.Summaries().Single().Scores.ToDictionary(s => s.Name, s => s);
        var files = _sets.Select(s => (s.Set.Id, s.ReferencePaths, s.SamplePaths)).ToList();
        return new EvaluationResult(run.Model.Name, run.Split, _table.Rows.ToList(), summary, files, notes) { Timing = times.ToString() };
    }

    JsonObject Config(SuiteRecord suite)
    {
        var (model, options, references) = (run.Model, run.Options, run.References);
        var described = new JsonObject();
        // Baselines get their own entries below; whether the probe was trained now or loaded from its cache is left out
        // (the cached weights are exact copies), so the file's bytes depend only on the inputs.
        foreach (var (k, v) in suite.Description)
            if (!k.StartsWith("leakage_baseline@", StringComparison.Ordinal) && !k.StartsWith("identity_baseline", StringComparison.Ordinal) && !k.StartsWith("identity_same", StringComparison.Ordinal) && !k.StartsWith("identity_cross", StringComparison.Ordinal) && !k.StartsWith("attribute_agreement_", StringComparison.Ordinal) && k != "probe_source") described[k] = v;
        // One entry per character scored (sorted), the baseline its sets were scored against.
        var leakage = new SortedDictionary<string, double?>(StringComparer.Ordinal);
        foreach (var set in _sets) leakage[set.Set.Character] = set.LeakageBaseline;
        var leak = new JsonObject();
        foreach (var (character, beta) in leakage) leak[character] = beta;
        var identity = suite.Identity;
        return new JsonObject
        {
            ["protocol"] = "retribooru-evaluate/2",
            ["model"] = model.Name,
            ["branch"] = model.Branch.Kind.Name(),
            ["model_config"] = model.Model.Config.Name,
            ["image_size"] = model.ImageSize,
            ["dataset"] = Path.GetFullPath(references.DatasetDir),
            ["manifest"] = Path.GetFullPath(references.ManifestPath),
            ["scheme"] = references.Scheme.Name(),
            ["split"] = options.Split.Name(),
            ["manifest_split"] = EvaluationSets.ManifestSplit(options.Split),
            ["reference_sets_requested"] = options.ReferenceSets,
            ["reference_sets"] = new JsonArray(references.Sets.Select(s => (JsonNode?)new JsonObject
            {
                ["id"] = s.Id, ["character"] = s.Character, ["clothing_id"] = s.ClothingId, ["prompt"] = s.Prompt,
                ["generation_prompt"] = PromptViews.Apply(options.PromptView, s.Prompt, s.Character),
                ["references"] = new JsonArray(s.References.Select(r => (JsonNode?)new JsonObject { ["concept"] = r.Concept.Name(), ["image"] = r.Image }).ToArray()),
                ["face_clothing_ids"] = new JsonArray(s.FaceClothingIds.Select(c => (JsonNode?)c).ToArray()),
            }).ToArray()),
            ["prompt_view"] = options.PromptView.Name(),
            ["samples_per_reference"] = options.SamplesPerReference,
            ["seed"] = options.Seed,
            ["sample_seed_rule"] = "SHA-256 of \"<seed>/evaluation-sample/<set id>/<k>\" (Seeding.DeriveLong), recorded per row",
            ["sampling"] = new JsonObject
            {
                ["sampler"] = "ddim", ["steps"] = options.Sampling.Steps, ["text_scale"] = options.Sampling.TextScale,
                ["reference_scale"] = options.Sampling.ReferenceScale, ["eta"] = options.Sampling.Eta,
            },
            ["torch_threads"] = TorchRuntime.Threads,
            ["suite"] = described,
            ["identity_baseline"] = new JsonObject { ["value"] = identity.Value, ["pairs"] = identity.Pairs, ["examples"] = identity.Examples, ["quantile"] = identity.Quantile,
                ["same_character_mean"] = identity.SameCharacterMean, ["cross_character_median"] = identity.CrossCharacterMedian },
            ["leakage_baselines"] = leak,
            ["attribute_agreement_baseline"] = suite.Attributes is { } ab ? new JsonObject { ["value"] = ab.Value, ["pairs"] = ab.Pairs, ["examples"] = ab.Examples,
                ["quantile"] = ab.Quantile, ["same_character_mean"] = ab.SameCharacterMean, ["cross_character_median"] = ab.CrossCharacterMedian } : null,
            ["notes"] = new JsonArray(notes.Select(n => (JsonNode?)n).ToArray()),
        };
    }
}
