using RetriBooru.Settings;
using System.Diagnostics;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>
/// How a generated sample is read before scoring: its raw ResNet18 features (for KID) and, per concept, the window
/// compared with that concept's references (<see cref="EvaluationViews"/>).
/// </summary>
sealed record SampleReader(ResNet18Embedder Features, IImageEmbedder IdentityEmbedder, IdentityView IdentityView)
{
    public SKRectI? Locate(SKBitmap sample, IReadOnlyList<SKBitmap> references) => EvaluationViews.Locate(IdentityView, IdentityEmbedder, sample, references);

    /// <summary>KID's raw features of the samples (their whole-image embeddings are kept by the identity embedder's cache on the way).</summary>
    public float[][] KidFeatures(IReadOnlyList<SKBitmap> samples) =>
        IdentityEmbedder is EvaluationEmbeddingCache cache ? cache.FeaturesKeepingEmbeddings(Features, samples) : Features.FeaturesBatch(samples);
}

/// <summary>The leakage baseline of a character (null when none of its examples can be read).</summary>
delegate double? LeakageBaselineLookup(string character);

/// <summary>
/// The suite's yardsticks one evaluation scores against: the scorer (embedders, VQA, SWD baselines), whether SWD can be
/// computed (it needs the probe as VQA), how samples are read, the ground truth of attribute agreement and the
/// leakage baselines.
/// </summary>
sealed record ScoringYardsticks(EvaluationScorer Scorer, bool ScoresSwd, SampleReader Reader, AttributeGroundTruth? Truth, LeakageBaselineLookup LeakageBaseline);

/// <summary>
/// A scored reference set: its rows, the KID features of its samples, the leakage baseline it was scored against, and
/// its reference and sample files (for sample grids).
/// </summary>
sealed record ScoredSet(EvaluationSet Set, IReadOnlyList<ResultRow> Rows, IReadOnlyList<float[]> SampleFeatures, double? LeakageBaseline,
    IReadOnlyList<string> ReferencePaths, IReadOnlyList<string> SamplePaths);

/// <summary>
/// Stage 3 of an evaluation: reads each sample of a set (KID features, identity windows) and scores the set
/// (<see cref="EvaluationScorer"/>: identity, attribute agreement, prompt consistency, leakage, SWD).
/// </summary>
sealed class SetScoring(ScoringYardsticks yardsticks, EvaluationRun run, List<string> notes, CancellationToken cancellationToken)
{
    readonly Stopwatch _locating = new();
    readonly Stopwatch _scoring = new();

    /// <summary>Time spent finding identity windows.</summary>
    public TimeSpan ViewsElapsed => _locating.Elapsed;
    /// <summary>Time spent in the scorer.</summary>
    public TimeSpan ScoringElapsed => _scoring.Elapsed;

    public ScoredSet Score(LoadedReferenceSet references, SampledSet sampled, EvaluationProgress progress)
    {
        var set = references.Set;
        var faces = references.References.Where(r => r.IsFace).Select(r => r.Image).ToList();
        var clothes = references.References.Where(r => r.IsClothing).Select(r => r.Image).ToList();
        // KID's raw features of the set's samples, in one ONNX run.
        var features = yardsticks.Reader.KidFeatures(sampled.Images);
        var samples = new List<ScoringSample>();
        for (int k = 0; k < sampled.Images.Count; k++)
        {
            var image = sampled.Images[k];
            _locating.Start();
            var faceBox = yardsticks.Reader.Locate(image, faces);
            var clothesBox = yardsticks.Reader.Locate(image, clothes);
            _locating.Stop();
            samples.Add(new ScoringSample(image, k, sampled.Seeds[k], sampled.RelativePaths[k], faceBox, clothesBox));
            progress.Advance();
        }
        double? beta = yardsticks.LeakageBaseline(set.Character);
        if (beta is null) notes.Add($"no leakage baseline for {set.Character}: leakage omitted for set {set.Id}");
        var expected = yardsticks.Truth?.Expected(set.References.Select(r => (r.Concept, r.SourceId)));
        var scoringSet = new ScoringReferenceSet(set.Id, references.References, references.Prompt, EvaluationPrompts.Tags(references.Prompt), beta, expected);
        // Without a VQA provider SWD cannot be computed: scoring one sample at a time skips it (and nothing else).
        _scoring.Start();
        var rows = yardsticks.ScoresSwd
            ? yardsticks.Scorer.Score(run.Model.Name, run.Split, scoringSet, samples, cancellationToken)
            : samples.SelectMany(s => yardsticks.Scorer.Score(run.Model.Name, run.Split, scoringSet, [s], cancellationToken)).ToList();
        _scoring.Stop();
        return new ScoredSet(set, rows.Select(Renamed).ToList(), features, beta, references.Paths, sampled.SavedPaths);
    }

    /// <summary>The scorer's <c>identity_clothing</c> is reported under the concept word: <c>identity_clothes</c>.</summary>
    static ResultRow Renamed(ResultRow row) => row.Scores.ContainsKey("identity_clothing")
        ? row with { Scores = row.Scores.ToDictionary(kv => kv.Key == "identity_clothing" ? "identity_clothes" : kv.Key, kv => kv.Value) }
        : row;
}
