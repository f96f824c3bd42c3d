namespace RetriBooru.Metrics;

/// <summary>Small dense-vector helpers used by the scores (embeddings are short, so plain loops are fine).</summary>
public static class VectorMath
{
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"vector lengths differ: {a.Length} vs {b.Length}");
        double sum = 0;
        for (int i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }

    public static double Norm(ReadOnlySpan<float> a) => Math.Sqrt(Dot(a, a));

    /// <summary>Cosine similarity; 0 when either vector is all zeros (nothing to compare).</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double na = Norm(a), nb = Norm(b);
        if (na == 0 || nb == 0) return 0;
        return Dot(a, b) / (na * nb);
    }

    /// <summary>Returns a copy scaled to unit length (zeros stay zeros).</summary>
    public static float[] Normalize(ReadOnlySpan<float> a)
    {
        var n = Norm(a);
        var result = a.ToArray();
        if (n == 0) return result;
        for (int i = 0; i < result.Length; i++) result[i] = (float)(result[i] / n);
        return result;
    }

    /// <summary>Mean vector of a non-empty set.</summary>
    public static float[] Mean(IReadOnlyList<float[]> vectors)
    {
        if (vectors.Count == 0) throw new ArgumentException("cannot average an empty set of vectors");
        var result = new double[vectors[0].Length];
        foreach (var v in vectors)
        {
            if (v.Length != result.Length) throw new ArgumentException($"vector lengths differ: {v.Length} vs {result.Length}");
            for (int i = 0; i < v.Length; i++) result[i] += v[i];
        }
        return result.Select(x => (float)(x / vectors.Count)).ToArray();
    }
}
