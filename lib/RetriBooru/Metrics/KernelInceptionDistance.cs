namespace RetriBooru.Metrics;

/// <summary>KID with a percentile bootstrap interval; <see cref="Generated"/> and <see cref="Real"/> are the set sizes.</summary>
public sealed record KidResult(double Value, double Lower, double Upper, int Generated, int Real);

/// <summary>
/// Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of the squared maximum mean discrepancy
/// between two feature sets under the cubic polynomial kernel k(x, y) = (x·y / d + 1)^3,
/// MMD² = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) − 2 mean_{i,j} k(x_i, y_j).
/// Unbiased, so two samples of one distribution score about 0 (slightly negative values happen) whatever their size.
/// The interval resamples both sets with replacement; pairs that are two copies of one drawn item are left out of the
/// within-set means, so duplicates do not bias a resample. A resample drawing a single distinct item has no within-set
/// pair (its MMD² is undefined) and is drawn again: with 4 samples that happens 1.6% of the time and, counted as a
/// within-set mean of 0, it dragged the interval's lower end far below the value.
/// </summary>
public static class KernelInceptionDistance
{
    public static double Kernel(float[] x, float[] y)
    {
        double dot = 0;
        for (int i = 0; i < x.Length; i++) dot += (double)x[i] * y[i];
        double k = dot / x.Length + 1;
        return k * k * k;
    }

    /// <summary>The unbiased MMD² of two feature sets (each at least 2 vectors of one length).</summary>
    public static double Mmd2(IReadOnlyList<float[]> x, IReadOnlyList<float[]> y)
    {
        var (kxx, kyy, kxy) = Kernels(x, y);
        return Mmd2(kxx, kyy, kxy, Identity(x.Count), Identity(y.Count));
    }

    /// <summary>KID with a <paramref name="resamples"/>-fold bootstrap 95% interval (0 resamples: the interval is the value).</summary>
    public static KidResult Compute(IReadOnlyList<float[]> generated, IReadOnlyList<float[]> real, int resamples = 200, long seed = 0)
    {
        if (resamples < 0) throw new ArgumentOutOfRangeException(nameof(resamples), resamples, "resamples must be at least 0");
        var (kxx, kyy, kxy) = Kernels(generated, real);
        double value = Mmd2(kxx, kyy, kxy, Identity(generated.Count), Identity(real.Count));
        if (resamples == 0) return new KidResult(value, value, value, generated.Count, real.Count);
        var random = Runtime.Seeding.Stream(seed, "kid-bootstrap");
        var draws = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            var ix = Draw(random, generated.Count);
            var iy = Draw(random, real.Count);
            draws[b] = Mmd2(kxx, kyy, kxy, ix, iy);
        }
        Array.Sort(draws);
        return new KidResult(value, Bootstrap.Quantile(draws, 0.025), Bootstrap.Quantile(draws, 0.975), generated.Count, real.Count);
    }

    static (double[,] Kxx, double[,] Kyy, double[,] Kxy) Kernels(IReadOnlyList<float[]> x, IReadOnlyList<float[]> y)
    {
        if (x.Count < 2 || y.Count < 2) throw new ArgumentException($"KID needs at least 2 feature vectors per set, got {x.Count} and {y.Count}");
        int d = x[0].Length;
        if (d == 0 || x.Concat(y).Any(v => v.Length != d)) throw new ArgumentException("KID needs feature vectors of one non-zero length");
        var kxx = Gram(x, x);
        var kyy = Gram(y, y);
        var kxy = Gram(x, y);
        return (kxx, kyy, kxy);
    }

    static double[,] Gram(IReadOnlyList<float[]> a, IReadOnlyList<float[]> b)
    {
        var k = new double[a.Count, b.Count];
        for (int i = 0; i < a.Count; i++)
            for (int j = 0; j < b.Count; j++)
                k[i, j] = Kernel(a[i], b[j]);
        return k;
    }

    static double Mmd2(double[,] kxx, double[,] kyy, double[,] kxy, int[] ix, int[] iy)
    {
        return WithinMean(kxx, ix) + WithinMean(kyy, iy) - 2 * CrossMean(kxy, ix, iy);
    }

    static double WithinMean(double[,] k, int[] index)
    {
        double sum = 0;
        long pairs = 0;
        for (int a = 0; a < index.Length; a++)
            for (int b = 0; b < index.Length; b++)
            {
                if (index[a] == index[b]) continue; // the diagonal, and copies of one item in a resample
                sum += k[index[a], index[b]];
                pairs++;
            }
        return pairs == 0 ? 0 : sum / pairs;
    }

    static double CrossMean(double[,] k, int[] ix, int[] iy)
    {
        double sum = 0;
        foreach (int a in ix)
            foreach (int b in iy)
                sum += k[a, b];
        return sum / ((double)ix.Length * iy.Length);
    }

    static int[] Identity(int n) => Enumerable.Range(0, n).ToArray();

    /// <summary>n indices drawn with replacement, at least two of them distinct (n ≥ 2, so a redraw always ends).</summary>
    static int[] Draw(Random random, int n)
    {
        var index = new int[n];
        do
        {
            for (int i = 0; i < n; i++) index[i] = random.Next(n);
        } while (index.All(i => i == index[0]));
        return index;
    }
}
