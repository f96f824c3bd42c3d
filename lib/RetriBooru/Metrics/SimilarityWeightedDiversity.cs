using RetriBooru.Metrics.Vqa;
using SkiaSharp;

namespace RetriBooru.Metrics;

/// <summary>SWD of one reference set, with its ingredients for inspection.</summary>
public sealed record SwdResult(
    double Value,
    int Generations,
    IReadOnlyList<string> QuestionIds,
    IReadOnlyList<double> IdentityWeights,
    IReadOnlyList<double> Novelty,
    double MeanPairDiversity);

/// <summary>
/// SWD, Similarity-Weighted Diversity, for generations G_1..G_n (n &gt;= 2) of one reference set R = {r_1..r_m}.
///
///   answers      A_i[q] = VQA(G_i, q) for each question q in Q (Q = the questions answered for every image)
///   diversity    d(A, B) = (1/|Q|) * sum_q dist(A[q], B[q])        dist in [0,1]: exact mismatch, or 1 - cos of answer embeddings
///   identity     s_i = clamp((sim_i - b) / (1 - b), 0, 1)          sim_i = identity similarity of G_i to R,
///                                                                   b = similarity of unrelated identities (IdentitySimilarity.UnrelatedBaseline)
///   novelty      v_i = min(1, |Q| * min_r d(A_i, A(r)))            0 when G_i's answers equal some reference's, 1 once they
///                                                                   differ from the closest reference by one full answer
///                                                                   (v_i = 1 when reference answers are not given)
///   SWD          = (2 / (n (n-1))) * sum_{i&lt;j} s_i s_j * d(A_i, A_j) * sqrt(v_i v_j)
///
/// Properties (tested): copying the reference gives identical answers (d = 0) and zero novelty, so SWD = 0; copying
/// different references gives v = 0, so still 0; unrelated images have sim_i &lt;= b, so s_i = 0 and SWD ~ 0; images that
/// keep the identity (s ~ 1) while their background, pose and expression vary (the question set asks about these
/// details) score highest. SWD lies in [0, 1].
/// </summary>
public static class SimilarityWeightedDiversity
{
    public static double IdentityWeight(double similarity, double baseline)
    {
        if (baseline >= 1) throw new ArgumentOutOfRangeException(nameof(baseline), "the identity baseline must be below 1");
        return Math.Clamp((similarity - baseline) / (1 - baseline), 0, 1);
    }

    public static double AnswerSetDistance(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b, IReadOnlyList<string> questionIds, IAnswerDistance distance)
    {
        if (questionIds.Count == 0) throw new ArgumentException("no common questions to compare answers on");
        return questionIds.Average(q => distance.Distance(a[q], b[q]));
    }

    /// <summary>SWD from answers and identity similarities (the formula above).</summary>
    public static SwdResult Compute(
        IReadOnlyList<IReadOnlyDictionary<string, string>> generationAnswers,
        IReadOnlyList<double> identitySimilarities,
        double identityBaseline,
        IAnswerDistance distance,
        IReadOnlyList<IReadOnlyDictionary<string, string>>? referenceAnswers = null)
    {
        int n = generationAnswers.Count;
        if (n < 2) throw new ArgumentException($"SWD needs at least 2 generations per reference set, got {n}");
        if (identitySimilarities.Count != n) throw new ArgumentException($"{identitySimilarities.Count} identity similarities for {n} generations");
        var all = generationAnswers.Concat(referenceAnswers ?? []).ToList();
        var questions = all.Skip(1).Aggregate((IEnumerable<string>)all[0].Keys, (acc, d) => acc.Intersect(d.Keys)).OrderBy(q => q, StringComparer.Ordinal).ToList();
        if (questions.Count == 0) throw new ArgumentException("the generations (and references) share no answered question");

        var weights = identitySimilarities.Select(s => IdentityWeight(s, identityBaseline)).ToArray();
        var novelty = generationAnswers.Select(a => referenceAnswers is null || referenceAnswers.Count == 0
            ? 1.0
            : Math.Min(1, questions.Count * referenceAnswers.Min(r => AnswerSetDistance(a, r, questions, distance)))).ToArray();

        double sum = 0, diversitySum = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
            {
                double d = AnswerSetDistance(generationAnswers[i], generationAnswers[j], questions, distance);
                diversitySum += d;
                sum += weights[i] * weights[j] * d * Math.Sqrt(novelty[i] * novelty[j]);
            }
        double pairs = n * (n - 1) / 2.0;
        return new SwdResult(sum / pairs, n, questions, weights, novelty, diversitySum / pairs);
    }

    /// <summary>Asks the VQA provider every question it can answer; returns question id -> normalised answer.</summary>
    public static IReadOnlyDictionary<string, string> Describe(IVqaProvider vqa, SKBitmap image, IReadOnlyList<VqaQuestion> questions, CancellationToken cancellationToken = default) =>
        vqa.Ask(image, questions.Where(vqa.CanAnswer).ToList(), cancellationToken)
            .ToDictionary(a => a.QuestionId, a => VqaText.Normalize(a.Answer));
}

/// <summary>The full SWD pipeline over images: VQA answers for generations and references, then <see cref="SimilarityWeightedDiversity.Compute"/>.</summary>
public sealed class SwdEvaluator(IVqaProvider vqa, IAnswerDistance distance, double identityBaseline, IReadOnlyList<VqaQuestion>? questions = null)
{
    public IReadOnlyList<VqaQuestion> Questions { get; } = questions ?? VqaQuestions.Default;
    public double IdentityBaseline => identityBaseline;

    /// <param name="generations">The n generated images of one reference set.</param>
    /// <param name="identitySimilarities">sim_i of each generation to the reference set (e.g. <see cref="IdentityScore.Combined"/>).</param>
    /// <param name="references">The reference images (for novelty); may be empty.</param>
    public SwdResult Evaluate(IReadOnlyList<SKBitmap> generations, IReadOnlyList<double> identitySimilarities, IReadOnlyList<SKBitmap> references, CancellationToken cancellationToken = default)
    {
        var generationAnswers = generations.Select(g => SimilarityWeightedDiversity.Describe(vqa, g, Questions, cancellationToken)).ToList();
        var referenceAnswers = references.Select(r => SimilarityWeightedDiversity.Describe(vqa, r, Questions, cancellationToken)).ToList();
        if (distance is EmbeddingAnswerDistance embedding)
            embedding.Warm(generationAnswers.Concat(referenceAnswers).SelectMany(a => a.Values));
        return SimilarityWeightedDiversity.Compute(generationAnswers, identitySimilarities, identityBaseline, distance, referenceAnswers);
    }
}
