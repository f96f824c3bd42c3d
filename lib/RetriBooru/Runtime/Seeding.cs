using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace RetriBooru.Runtime;

/// <summary>
/// The one seeding entry point. <see cref="Seed"/> seeds torch's global generators (CPU and CUDA) and
/// resets the managed streams; <see cref="Stream"/> derives an independent, reproducible
/// <see cref="Random"/> per named purpose (e.g. "data-order", "prompt-dropout"), so adding a new consumer
/// of randomness never shifts the numbers another consumer sees.
/// </summary>
public static class Seeding
{
    static readonly object Gate = new();
    static long _seed;
    static Random _shared = new(0);

    public static long CurrentSeed { get { lock (Gate) return _seed; } }

    /// <summary>The shared managed RNG (seeded by <see cref="Seed"/>); prefer <see cref="Stream"/> for named purposes.</summary>
    public static Random Shared { get { lock (Gate) return _shared; } }

    public static void Seed(long seed)
    {
        TorchRuntime.EnsureLoaded();
        lock (Gate)
        {
            _seed = seed;
            _shared = Stream(seed, "shared");
            manual_seed(seed);
            if (TorchRuntime.IsCudaAvailable()) cuda.manual_seed_all(seed);
        }
    }

    /// <summary>A fresh managed RNG for a named purpose, derived from the current seed.</summary>
    public static Random Stream(string purpose) => Stream(CurrentSeed, purpose);

    /// <summary>A fresh managed RNG derived from (seed, purpose) by SHA-256, independent of call order.</summary>
    public static Random Stream(long seed, string purpose) => new(DeriveInt(seed, purpose));

    /// <summary>A torch generator for a named purpose, derived like <see cref="Stream(long,string)"/>.</summary>
    public static Generator TorchGenerator(long seed, string purpose, Device? device = null)
    {
        TorchRuntime.EnsureLoaded();
        var generator = new Generator(0, device ?? CPU);
        generator.manual_seed(DeriveLong(seed, purpose));
        return generator;
    }

    public static int DeriveInt(long seed, string purpose) => (int)(DeriveLong(seed, purpose) & 0x7fffffff);

    public static long DeriveLong(long seed, string purpose)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}/{purpose}"));
        return BitConverter.ToInt64(hash, 0) & long.MaxValue;
    }
}
