using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Runtime;

/// <summary>TorchSharp could not be loaded; the message says why and what to do.</summary>
public sealed class TorchLoadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The one place that starts TorchSharp: loads the native backend (with the libstdc++ fix when needed),
/// picks the device and the thread count. Every library entry point that touches tensors calls
/// <see cref="EnsureLoaded"/> first; it is idempotent and cheap after the first call.
/// </summary>
public static class TorchRuntime
{
    static readonly object Gate = new();
    static bool _loaded;

    public static void EnsureLoaded()
    {
        if (Volatile.Read(ref _loaded)) return;
        lock (Gate)
        {
            if (_loaded) return;
            NativeTorchLoader.Register();
            try
            {
                InitializeDeviceType(DeviceType.CPU);
                // A trivial op proves the native entry points bind, not only that a file was mapped.
                using var probe = ones(1);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new TorchLoadException(DescribeLoadFailure(e), e);
            }
            _loaded = true;
            OneDnn.ApplyDefault();
            NnPack.SwitchOff();
            // RETRIBOORU_THREADS pins libtorch's intra-op threads for the whole process (tests and CI set 1:
            // OpenMP workers spin-wait, so oversubscribed cores make every op many times slower).
            if (int.TryParse(Environment.GetEnvironmentVariable("RETRIBOORU_THREADS"), out var threads) && threads > 0)
                set_num_threads(threads);
        }
    }

    static string DescribeLoadFailure(Exception e)
    {
        var status = NativeTorchLoader.Status;
        var libstdcxx = status?.LibStdCxx ?? NativeTorchLoader.ProbeLibStdCxx();
        var lines = new List<string> { $"TorchSharp could not be loaded: {e.GetBaseException().Message}" };
        if (status?.Error is not null) lines.Add($"  native loader: {status.Error}");
        if (status?.UnsatisfiedVersions.Count > 0)
            lines.Add($"  the system libstdc++ ({libstdcxx.Path}) lacks {string.Join(", ", status.UnsatisfiedVersions)}; install a newer libstdc++6 (GCC 13 or later) or put one on LD_LIBRARY_PATH.");
        lines.Add("  What to do: run `dotnet restore` (the TorchSharp-cpu package provides libtorch), check that ~/.cache/retribooru " +
                  "or $RETRIBOORU_NATIVE_CACHE is writable, and see docs/troubleshooting.md.");
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>
    /// Resolves a device name: "cpu" (the default), "cuda" / "cuda:N" (fails clearly when CUDA is absent),
    /// or "auto" (CUDA when TorchSharp reports it, else CPU).
    /// </summary>
    public static Device ResolveDevice(string? name = "cpu")
    {
        EnsureLoaded();
        var requested = string.IsNullOrWhiteSpace(name) ? "cpu" : name.Trim().ToLowerInvariant();
        if (requested == "auto") return IsCudaAvailable() ? CUDA : CPU;
        if (requested == "cpu") return CPU;
        if (requested.StartsWith("cuda", StringComparison.Ordinal))
        {
            if (!IsCudaAvailable())
                throw new InvalidOperationException($"device '{name}' was requested but TorchSharp reports no CUDA device. " +
                    "This build uses the TorchSharp-cpu package; see docs/troubleshooting.md#gpu--cuda for the CUDA package switch.");
            return device(requested);
        }
        throw new ArgumentException($"unknown device '{name}': use cpu, cuda, cuda:N or auto");
    }

    public static bool IsCudaAvailable()
    {
        EnsureLoaded();
        try { return cuda.is_available(); }
        catch (Exception e) when (e is not OutOfMemoryException) { return false; }
    }

    /// <summary>
    /// The default of every --threads option: RETRIBOORU_THREADS when set (the test suite sets 1: its tests run side by
    /// side), else the machine's cores. Training splits each batch across them (one libtorch thread per part, see
    /// <see cref="Diffusion.DiffusionTrainer"/>), and OpenMP waits passively (<see cref="OpenMpWaitPolicy"/>), so another
    /// busy process does not make the workers spin.
    /// </summary>
    public static int DefaultThreads =>
        int.TryParse(Environment.GetEnvironmentVariable("RETRIBOORU_THREADS"), out var pinned) && pinned > 0 ? pinned : Math.Max(1, Environment.ProcessorCount);

    public static int Threads
    {
        get { EnsureLoaded(); return get_num_threads(); }
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "thread count must be at least 1");
            EnsureLoaded();
            set_num_threads(value);
        }
    }

    /// <summary>
    /// Deterministic mode: fixes the intra-op thread count (CPU reductions split work by thread count, so
    /// the count is part of the numbers), disables TF32 and reduced-precision reductions on CUDA.
    /// libtorch's own "deterministic algorithms" switch is not exposed by TorchSharp 0.107.
    /// </summary>
    public static void SetDeterministic(bool enabled, int threads = 2)
    {
        EnsureLoaded();
        Deterministic = enabled;
        if (!enabled) return;
        Threads = threads;
        if (IsCudaAvailable())
        {
            backends.cuda.matmul.allow_tf32 = false;
            backends.cudnn.allow_tf32 = false;
            backends.cuda.matmul.allow_fp16_reduced_precision_reduction = false;
        }
    }

    public static bool Deterministic { get; private set; }

    /// <summary>Versions shown by doctor and recorded with every result.</summary>
    public static string TorchSharpVersion =>
        typeof(torch).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion.Split('+')[0] ?? "unknown";

    public static string LibTorchVersion { get { EnsureLoaded(); return __version__; } }

    /// <summary>Times an n x n fp32 matmul and returns GFLOP/s (2n^3 flops per product), best of several runs.</summary>
    public static double MeasureMatmulGflops(int n = 1024, int repeats = 5, Device? onDevice = null)
    {
        EnsureLoaded();
        var device = onDevice ?? CPU;
        using var scope = NewDisposeScope();
        // Its own generator: a benchmark between seeding and building a model must not move the model's weights.
        using var generator = new Generator(1);
        var a = rand(n, n, generator: generator).to(device);
        var b = rand(n, n, generator: generator).to(device);
        using (var warm = a.matmul(b)) { }
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            using var inner = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var c = a.matmul(b);
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            _ = c.sum().item<float>();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * (double)n / best / 1e9;
    }
}
