using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Runtime;

/// <summary>
/// Tensor arithmetic with plain numbers that keeps every TorchSharp <see cref="Scalar"/> alive until its native call
/// has returned. TorchSharp 0.107 makes an implicit Scalar for <c>x * 0.5</c>, <c>a + b</c> (alpha 1),
/// <c>x.square()</c> (exponent 2) and <c>arange(n)</c>, passes its handle to native code, and leaves the object to
/// the garbage collector, which can free it while the call still reads it ("Unknown scalar type", toFloat
/// failures, segmentation faults under frequent collections; upstream PRs #1434 and #1496). Here every Scalar is
/// either disposed after the call (<c>using</c>) or a constant held for the whole process. The hot paths (training
/// step, optimiser, samplers, schedule math, model forward passes) use only these; a test checks their IL.
/// </summary>
public static class ScalarOps
{
    /// <summary>The alpha of a plain sum (an integer, so it also suits integer tensors); lives as long as the process.</summary>
    static readonly Scalar One = 1.ToScalar();

    /// <summary>a + b.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + value.</summary>
    public static Tensor Plus(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.add(s, One);
    }

    /// <summary>a * factor.</summary>
    public static Tensor Times(this Tensor a, double factor)
    {
        using var s = factor.ToScalar();
        return a.mul(s);
    }

    /// <summary>a / divisor.</summary>
    public static Tensor Over(this Tensor a, double divisor)
    {
        using var s = divisor.ToScalar();
        return a.div(s);
    }

    /// <summary>a * a (<c>square()</c> raises to an implicit Scalar power).</summary>
    public static Tensor Squared(this Tensor a) => a.mul(a);

    /// <summary>a clamped to [min, max].</summary>
    public static Tensor Clamped(this Tensor a, double min, double max)
    {
        using var low = min.ToScalar();
        using var high = max.ToScalar();
        return a.clamp(low, high);
    }

    /// <summary>max(a, min).</summary>
    public static Tensor AtLeast(this Tensor a, double min)
    {
        using var low = min.ToScalar();
        return a.clamp_min(low);
    }

    /// <summary>In place: a *= factor.</summary>
    public static Tensor ScaleInPlace(this Tensor a, double factor)
    {
        using var s = factor.ToScalar();
        return a.mul_(s);
    }

    /// <summary>In place: a += value.</summary>
    public static Tensor PlusInPlace(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.add_(s, One);
    }

    /// <summary>In place: a += alpha * b.</summary>
    public static Tensor AddScaledInPlace(this Tensor a, Tensor b, double alpha)
    {
        using var s = alpha.ToScalar();
        return a.add_(b, s);
    }

    /// <summary>In place: a += value * b * c.</summary>
    public static Tensor AddProductInPlace(this Tensor a, Tensor b, Tensor c, double value)
    {
        using var s = value.ToScalar();
        return a.addcmul_(b, c, s);
    }

    /// <summary>In place: a += value * b / c.</summary>
    public static Tensor AddQuotientInPlace(this Tensor a, Tensor b, Tensor c, double value)
    {
        using var s = value.ToScalar();
        return a.addcdiv_(b, c, s);
    }

    /// <summary>In place: every element of a set to value.</summary>
    public static Tensor FillInPlace(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.fill_(s);
    }

    /// <summary>a with the elements where mask is true replaced by value.</summary>
    public static Tensor MaskedFill(this Tensor a, Tensor mask, double value)
    {
        using var s = value.ToScalar();
        return a.masked_fill(mask, s);
    }

    /// <summary>The boolean tensor a &gt;= value.</summary>
    public static Tensor IsAtLeast(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.ge(s);
    }

    /// <summary>0, 1, ..., count - 1 as <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static Tensor Range(long count, ScalarType dtype, Device? device = null)
    {
        using var start = 0.ToScalar();
        using var stop = count.ToScalar();
        return arange(start, stop, One, dtype, device);
    }

    /// <summary>A tensor of <paramref name="shape"/> filled with <paramref name="value"/>.</summary>
    public static Tensor Filled(long[] shape, double value, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var s = value.ToScalar();
        return full(shape, s, dtype, device);
    }
}
