using RetriBooru.Metrics.Vqa;

namespace RetriBooru.Metrics;

/// <summary>Distance in [0, 1] between two answers to the same question (0 = same meaning).</summary>
public interface IAnswerDistance
{
    string Name { get; }
    double Distance(string a, string b);
}

/// <summary>0 when the normalised answers are equal, else 1; the natural choice for the attribute probe's closed vocabularies.</summary>
public sealed class ExactMatchAnswerDistance : IAnswerDistance
{
    public string Name => "exact-match";
    public double Distance(string a, string b) => VqaText.Normalize(a) == VqaText.Normalize(b) ? 0 : 1;
}

/// <summary>
/// For free-text answers: clamp(1 - cos(e(a), e(b)), 0, 1) with e a sentence embedder; identical normalised answers
/// are exactly 0. Embeddings are cached per answer text, as a set of generations repeats the same answers often.
/// </summary>
public sealed class EmbeddingAnswerDistance(ITextEmbedder embedder) : IAnswerDistance
{
    readonly Dictionary<string, float[]> _cache = new();

    public string Name => "embedding-" + embedder.Name;

    public double Distance(string a, string b)
    {
        string na = VqaText.Normalize(a), nb = VqaText.Normalize(b);
        if (na == nb) return 0;
        return Math.Clamp(1 - VectorMath.Dot(EmbeddingOf(na), EmbeddingOf(nb)), 0, 1);
    }

    /// <summary>Embeds many answers in one call (faster than one at a time).</summary>
    public void Warm(IEnumerable<string> answers)
    {
        var missing = answers.Select(VqaText.Normalize).Where(a => !_cache.ContainsKey(a)).Distinct().ToArray();
        if (missing.Length == 0) return;
        var vectors = embedder.Embed(missing);
        for (int i = 0; i < missing.Length; i++) _cache[missing[i]] = vectors[i];
    }

    float[] EmbeddingOf(string normalized)
    {
        if (!_cache.TryGetValue(normalized, out var v)) _cache[normalized] = v = embedder.Embed([normalized])[0];
        return v;
    }
}
