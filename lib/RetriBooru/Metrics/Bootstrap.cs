using RetriBooru.Runtime;

namespace RetriBooru.Metrics;

/// <summary>A score's mean over its units (samples or reference sets) with a bootstrap confidence interval.</summary>
public sealed record ScoreSummary(string Name, double Mean, double Lower, double Upper, int Count, double Level, int Resamples, long Seed)
{
    public override string ToString() => $"{Name} = {Mean:F4} [{Lower:F4}, {Upper:F4}] (n={Count}, {Level:P0} CI)";
}

/// <summary>
/// Percentile bootstrap for the mean: draw <c>resamples</c> samples of size n with replacement (from a
/// <see cref="Seeding.Stream(long,string)"/> RNG, so the same seed gives the same interval), take each one's mean,
/// and report the (1-level)/2 and (1+level)/2 quantiles (linear interpolation between order statistics).
/// Non-finite values (a score undefined for a unit) are rejected up front rather than silently dropped.
/// </summary>
public static class Bootstrap
{
    public const int DefaultResamples = 1000;

    public static ScoreSummary MeanInterval(string name, IReadOnlyList<double> values, long seed = 0, int resamples = DefaultResamples, double level = 0.95)
    {
        Validate(name, values, resamples, level);
        double mean = values.Average();
        if (values.Count == 1) return new ScoreSummary(name, mean, mean, mean, 1, level, resamples, seed);
        return Resampled(name, mean, values.ToArray(), Enumerable.Repeat(1, values.Count).ToArray(), seed, resamples, level);
    }

    /// <summary>
    /// Like <see cref="MeanInterval"/>, but resamples whole clusters (an evaluation's reference sets): the samples of one
    /// set share its character, references and prompt, so their scores are not independent, and a unit-level bootstrap
    /// gives intervals too narrow for another draw of sets (measured: one RetriNet scored 0.535 on 8 seen sets with a
    /// unit interval of [0.426, 0.648], and 0.367 on 16 other sets). Each resample draws as many clusters as there are,
    /// with replacement, and takes the mean over all their units. When every cluster holds one unit the draws, and so
    /// the interval, equal <see cref="MeanInterval"/>'s; with fewer than two clusters there is no between-cluster
    /// spread to resample, so the units are resampled instead.
    /// </summary>
    public static ScoreSummary ClusteredMeanInterval(string name, IReadOnlyList<double> values, IReadOnlyList<string> clusters, long seed = 0,
        int resamples = DefaultResamples, double level = 0.95)
    {
        if (clusters.Count != values.Count) throw new ArgumentException($"score '{name}': {values.Count} values but {clusters.Count} cluster ids");
        Validate(name, values, resamples, level);
        var members = new Dictionary<string, (double Sum, int Count)>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < values.Count; i++)
        {
            if (!members.TryGetValue(clusters[i], out var m)) order.Add(clusters[i]);
            members[clusters[i]] = (m.Sum + values[i], m.Count + 1);
        }
        if (order.Count < 2 || order.Count == values.Count) return MeanInterval(name, values, seed, resamples, level);
        return Resampled(name, values.Average(), order.Select(c => members[c].Sum).ToArray(), order.Select(c => members[c].Count).ToArray(),
            seed, resamples, level);
    }

    static void Validate(string name, IReadOnlyList<double> values, int resamples, double level)
    {
        if (values.Count == 0) throw new ArgumentException($"score '{name}': no values to summarise");
        if (resamples < 1) throw new ArgumentOutOfRangeException(nameof(resamples), "need at least one resample");
        if (level is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(level), "level must be in (0, 1)");
        for (int i = 0; i < values.Count; i++)
            if (!double.IsFinite(values[i])) throw new ArgumentException($"score '{name}': value {i} is {values[i]}; drop undefined units before summarising");
    }

    /// <summary>The percentile interval of the mean over resamples of k groups (a group: its sum and unit count).</summary>
    static ScoreSummary Resampled(string name, double mean, double[] sums, int[] counts, long seed, int resamples, double level)
    {
        var rng = Seeding.Stream(seed, "bootstrap/" + name);
        var means = new double[resamples];
        int k = sums.Length;
        for (int b = 0; b < resamples; b++)
        {
            double sum = 0;
            long count = 0;
            for (int i = 0; i < k; i++)
            {
                int c = rng.Next(k);
                sum += sums[c];
                count += counts[c];
            }
            means[b] = sum / count;
        }
        Array.Sort(means);
        double alpha = (1 - level) / 2;
        return new ScoreSummary(name, mean, Quantile(means, alpha), Quantile(means, 1 - alpha), counts.Sum(), level, resamples, seed);
    }

    /// <summary>Quantile of sorted data, linear interpolation (type 7).</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) throw new ArgumentException("no data");
        double position = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(position), hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (position - lo) * (sorted[hi] - sorted[lo]);
    }
}
