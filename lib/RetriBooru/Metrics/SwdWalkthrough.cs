using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Imaging;
using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>Every ingredient of one SWD value, for notebooks that explain the metric step by step.</summary>
public sealed record SwdWalkthrough(
    IReadOnlyList<string> Questions,
    IReadOnlyList<IReadOnlyDictionary<string, string>> GenerationAnswers,
    IReadOnlyList<IReadOnlyDictionary<string, string>> ReferenceAnswers,
    double[][] PairDiversity,
    IReadOnlyList<double> IdentitySimilarities,
    double IdentityBaseline,
    IReadOnlyList<double> IdentityWeights,
    IReadOnlyList<double> Novelty,
    double Swd,
    string IdentityMeasure = "embedding")
{
    /// <summary>One row per generation: its answers, identity similarity, weight and novelty (a table for notebooks).</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, object>> Table() =>
        GenerationAnswers.Select((answers, i) =>
        {
            var row = new Dictionary<string, object> { ["generation"] = i };
            foreach (var q in Questions) row[q] = answers.TryGetValue(q, out var a) ? a : "";
            row["identity"] = Math.Round(IdentitySimilarities[i], 3);
            row["weight"] = Math.Round(IdentityWeights[i], 3);
            row["novelty"] = Math.Round(Novelty[i], 3);
            return (IReadOnlyDictionary<string, object>)row;
        }).ToList();
}

/// <summary>A named set of images scored for SWD: the copy / random / ideal sanity cases.</summary>
public sealed record SwdCase(string Name, string Explanation, double Swd, IReadOnlyList<string> ImagePaths);

/// <summary>
/// SWD step by step with an evaluation suite's yardsticks (its VQA probe, answer distance, identity embedder and
/// baseline): the answers to every question, the pairwise answer diversity, each generation's identity weight and
/// novelty, and the final value, which equals what <see cref="EvaluationSuite.Evaluate"/> reports for the same images.
/// Like the evaluation, identity is the attribute agreement with the references' ground truth when the expected
/// attributes are given and the suite weighs SWD by attributes (<see cref="ExpectedFor"/>), else the embedding identity.
/// </summary>
public static class SwdAnalysis
{
    /// <summary>What the references' source images say a generation should show (null without ground truth).</summary>
    public static ExpectedAttributes? ExpectedFor(EvaluationSuite suite, IEnumerable<ReferenceImage> references) =>
        suite.GroundTruth?.Expected(references.Select(r => (r.Concept, r.SourceId)));

    public static SwdWalkthrough Explain(EvaluationSuite suite, IReadOnlyList<SKBitmap> generations, IReadOnlyList<ScoringReference> references, int imageSize,
        ExpectedAttributes? expected = null)
    {
        var vqa = suite.Vqa ?? throw new InvalidOperationException($"{suite.DatasetDir}: no attribute probe (not a synthetic dataset), so SWD has no VQA answers");
        if (generations.Count < 2) throw new ArgumentException("SWD needs at least 2 generations");
        var questions = VqaQuestions.Default;
        var genAnswers = generations.Select(g => SimilarityWeightedDiversity.Describe(vqa, g, questions)).ToList();
        var refAnswers = references.Select(r => SimilarityWeightedDiversity.Describe(vqa, r.Image, questions)).ToList();
        if (suite.AnswerDistance is EmbeddingAnswerDistance embedding) embedding.Warm(genAnswers.Concat(refAnswers).SelectMany(a => a.Values));
        var faceRefs = references.Where(r => r.IsFace).Select(r => r.Image).ToList();
        var clothingRefs = references.Where(r => r.IsClothing).Select(r => r.Image).ToList();
        if (expected is { IsEmpty: false } && suite.AttributeBaselineValue(imageSize) is double attributeBaseline && suite.Vqa is AttributeProbe probe)
        {
            var agreements = generations.Select(g => expected.Agreement(probe.Predict(g)).Combined ?? 0).ToList();
            return Walk(suite, genAnswers, refAnswers, agreements, attributeBaseline, "attribute agreement");
        }
        // Generated images have no boxes: each concept's view is located as the evaluation does (the suite's identity view).
        var identities = generations.Select(g =>
        {
            using var face = faceRefs.Count > 0 ? View(g, EvaluationViews.Locate(suite.IdentityView, suite.IdentityEmbedder, g, faceRefs)) : null;
            using var clothes = clothingRefs.Count > 0 ? View(g, EvaluationViews.Locate(suite.IdentityView, suite.IdentityEmbedder, g, clothingRefs)) : null;
            return IdentitySimilarity.Score(suite.IdentityEmbedder, new IdentityViews(face, clothes), faceRefs, clothingRefs).Combined;
        }).ToList();
        return Walk(suite, genAnswers, refAnswers, identities, suite.IdentityBaselineValue(imageSize), "embedding");
    }

    static SwdWalkthrough Walk(EvaluationSuite suite, List<IReadOnlyDictionary<string, string>> genAnswers, List<IReadOnlyDictionary<string, string>> refAnswers,
        IReadOnlyList<double> identities, double baseline, string measure)
    {
        var result = SimilarityWeightedDiversity.Compute(genAnswers, identities, baseline, suite.AnswerDistance, refAnswers);
        var q = result.QuestionIds;
        var pairs = genAnswers.Select(a => genAnswers.Select(b => SimilarityWeightedDiversity.AnswerSetDistance(a, b, q, suite.AnswerDistance)).ToArray()).ToArray();
        return new SwdWalkthrough(q, genAnswers, refAnswers, pairs, identities, baseline, result.IdentityWeights, result.Novelty, result.Value, measure);
    }

    static SKBitmap View(SKBitmap image, SKRectI? box) => box is SKRectI b ? ImageOps.Crop(image, b) : image.Copy();

    /// <summary>Loads image files (generations or references) at the evaluation's image size.</summary>
    public static IReadOnlyList<SKBitmap> Load(IEnumerable<string> paths, int imageSize) => paths.Select(p => ImageTensor.LoadBitmap(p, imageSize)).ToList();

    /// <summary>
    /// The three sanity cases on real dataset images, for one manifest example (its references):
    /// copy (the references' own source image, n times: SWD ~0), random (images of other characters: SWD ~0), and
    /// ideal (other images of the same character and outfit, varied background and pose: the highest SWD).
    /// </summary>
    public static IReadOnlyList<SwdCase> SanityCases(EvaluationSuite suite, TrainingExample example, int count, int imageSize, long seed = 1)
    {
        var dataset = suite.DatasetDir;
        var records = DatasetLayout.ReadRecords(dataset);
        var random = new Random(Runtime.Seeding.DeriveInt(seed, $"swd-sanity/{example.Target}"));
        var sourceIds = example.References.Select(r => r.SourceId).ToHashSet();
        var copySource = records.First(r => r.Id == example.References[0].SourceId);
        var others = records.Where(r => r.Character != example.Character).OrderBy(_ => random.Next()).Take(count).ToList();
        var sameIdentity = records.Where(r => r.Character == example.Character && r.ClothingId == example.ClothingId && r.Id != example.Target && !sourceIds.Contains(r.Id))
            .OrderBy(_ => random.Next()).Take(count).ToList();
        var cases = new List<(string Name, string Why, List<string> Paths)>
        {
            ("copy", "the reference's source image, repeated: nothing varies and nothing is new", Enumerable.Repeat(ManifestReader.Resolve(dataset, copySource.Image), count).ToList()),
            ("random", "images of other characters: identity weight 0", others.Select(r => ManifestReader.Resolve(dataset, r.Image)).ToList()),
            ("ideal", "other images of the same character and outfit: identity kept, background and pose varied", sameIdentity.Select(r => ManifestReader.Resolve(dataset, r.Image)).ToList()),
        };
        var references = example.References.Select(r => new ScoringReference(ImageTensor.LoadBitmap(ManifestReader.Resolve(dataset, r.Image), imageSize), r.Concept)).ToList();
        try
        {
            var results = new List<SwdCase>();
            foreach (var (name, why, paths) in cases.Where(c => c.Paths.Count >= 2))
            {
                var images = Load(paths, imageSize);
                try { results.Add(new SwdCase(name, why, Explain(suite, images, references, imageSize, ExpectedFor(suite, example.References)).Swd, paths)); }
                finally { foreach (var i in images) i.Dispose(); }
            }
            return results;
        }
        finally
        {
            foreach (var r in references) r.Image.Dispose();
        }
    }
}
