using System.Runtime.InteropServices;

namespace RetriBooru.Runtime;

/// <summary>
/// libtorch's oneDNN (mkldnn) kernels, off by default. On an AMD EPYC with AVX-512 (2026-12-01) oneDNN's convolution
/// backward pass returned NaN gradients now and then from finite inputs and a finite loss: about 1 in 100 fresh micro
/// models at step 0 (every U-Net gradient but conv_out's, so the gradient into the last convolution's input), and a
/// 6000-step base run stopped three times in its first 4,400 steps; a recomputation of the same batch sometimes gave NaN
/// again. With oneDNN off, libtorch's own convolution kernels ran the same 600 checks without one. TorchSharp 0.107
/// exposes no switch for it, so this calls libtorch's <c>at::Context::setUserEnabledMkldnn</c> by its (Itanium C++)
/// symbol; where that symbol cannot be found (Windows builds) oneDNN stays as libtorch configured it and
/// <see cref="Enabled"/> says so. <c>RETRIBOORU_ONEDNN=1</c> keeps it on (to compare speed or numbers).
/// </summary>
public static class OneDnn
{
    public const string EnvironmentVariable = "RETRIBOORU_ONEDNN";
    const string ContextSymbol = "_ZN2at13globalContextEv";
    const string SetSymbol = "_ZN2at7Context20setUserEnabledMkldnnEb";
    const string GetSymbol = "_ZNK2at7Context17userEnabledMkldnnEv";

    /// <summary>Whether libtorch uses oneDNN now; null when the switch could not be reached.</summary>
    public static bool? Enabled { get; private set; }

    /// <summary>Whether the user asked to keep oneDNN (<see cref="EnvironmentVariable"/> = 1).</summary>
    public static bool Requested => Environment.GetEnvironmentVariable(EnvironmentVariable) == "1";

    /// <summary>Called once by <see cref="TorchRuntime.EnsureLoaded"/> after libtorch is loaded.</summary>
    internal static void ApplyDefault()
    {
        Enabled = null;
        if (LoadedLibTorchCpu() is not { } library) return;
        if (!NativeLibrary.TryGetExport(library, ContextSymbol, out var context) || !NativeLibrary.TryGetExport(library, SetSymbol, out var set)
            || !NativeLibrary.TryGetExport(library, GetSymbol, out var get))
            return;
        unsafe
        {
            var instance = ((delegate* unmanaged<IntPtr>)context)();
            if (!Requested) ((delegate* unmanaged<IntPtr, byte, void>)set)(instance, 0);
            Enabled = ((delegate* unmanaged<IntPtr, byte>)get)(instance) != 0;
        }
    }

    /// <summary>
    /// The libtorch_cpu that TorchSharp uses: the copy the loader preloaded by full path, else the one already mapped
    /// under that soname (a bare-name dlopen returns it instead of mapping a second copy).
    /// </summary>
    static IntPtr? LoadedLibTorchCpu()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return null;
        var path = NativeTorchLoader.PreloadedLibTorch.FirstOrDefault(p => Path.GetFileName(p) == "libtorch_cpu.so");
        if (path is not null && NativeLibrary.TryLoad(path, out var preloaded)) return preloaded;
        return NativeLibrary.TryLoad(OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so", out var handle) ? handle : null;
    }
}
