namespace RetriBooru.Runtime;

/// <summary>The "did you mean" hint of every place that rejects an unknown name (spec fields, CLI options, model kinds).</summary>
public static class DidYouMean
{
    /// <summary>The known name closest to <paramref name="name"/> by edit distance, or null when none is close (at most max(2, |name| / 3) edits).</summary>
    public static string? Closest(string name, IEnumerable<string> known)
    {
        var best = known.Select(k => (k, d: Levenshtein(name, k))).OrderBy(x => x.d).ThenBy(x => x.k, StringComparer.Ordinal).FirstOrDefault();
        return best.k is not null && best.d <= Math.Max(2, name.Length / 3) ? best.k : null;
    }

    /// <summary>" (did you mean 'x'?)", or "" when no known name is close.</summary>
    public static string Hint(string name, IEnumerable<string> known, string prefix = "") =>
        Closest(name, known) is { } closest ? $" (did you mean '{prefix}{closest}'?)" : "";

    public static int Levenshtein(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
