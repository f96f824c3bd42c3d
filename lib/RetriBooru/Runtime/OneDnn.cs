using TorchSharp;
using System.Runtime.InteropServices;

namespace RetriBooru.Runtime;

/// <summary>
/// libtorch's oneDNN (mkldnn) kernels: on, as libtorch sets them, unless <c>RETRIBOORU_ONEDNN=0</c>. On an AMD EPYC with
/// AVX-512 (2026-12) oneDNN's backward pass of a convolution with 12 output channels (the U-Net's output convolution)
/// returned wrong input gradients for every batch above 1 (40-100% of their size off, sometimes NaN, which is how it was
/// found: a 6000-step base run stopped three times); with its vector ISA capped at AVX-2 too. That layer now runs by
/// <see cref="Modeling.MatmulConvolution"/>, every model's gradients agree with oneDNN on and off (tested), and the other
/// convolutions run on oneDNN, 1.25-1.35x faster per training step than libtorch's own kernels here. Setting the variable
/// to 0 switches oneDNN off (to compare, or if a CPU shows another fault; <c>doctor</c> checks the known one). TorchSharp
/// 0.107 exposes no switch, so this calls libtorch's <c>at::Context::setUserEnabledMkldnn</c> by its (Itanium C++) symbol;
/// where that symbol cannot be found (Windows builds) oneDNN stays as libtorch configured it and <see cref="Enabled"/> says so.
/// </summary>
public static class OneDnn
{
    public const string EnvironmentVariable = "RETRIBOORU_ONEDNN";
    const string ContextSymbol = "_ZN2at13globalContextEv";
    const string SetSymbol = "_ZN2at7Context20setUserEnabledMkldnnEb";
    const string GetSymbol = "_ZNK2at7Context17userEnabledMkldnnEv";

    /// <summary>Whether libtorch uses oneDNN now; null when the switch could not be reached.</summary>
    public static bool? Enabled { get; private set; }

    /// <summary>Whether the user switched oneDNN off (<see cref="EnvironmentVariable"/> = 0).</summary>
    public static bool SwitchedOff => Environment.GetEnvironmentVariable(EnvironmentVariable) == "0";

    /// <summary>Called once by <see cref="TorchRuntime.EnsureLoaded"/> after libtorch is loaded.</summary>
    // Set both ways: libtorch's default is on, but another library in the process may have changed it.
    internal static void ApplyDefault() => Set(!SwitchedOff);

    /// <summary>
    /// Switches libtorch's oneDNN kernels for the whole process (every thread) and reads the flag back into
    /// <see cref="Enabled"/>; false when the switch cannot be reached. Tests compare the two paths with it.
    /// </summary>
    internal static bool Set(bool enabled)
    {
        Enabled = SetContextFlag(SetSymbol, GetSymbol, enabled);
        return Enabled is not null;
    }

    /// <summary>
    /// Sets one of libtorch's global <c>at::Context</c> flags through its exported setter and returns what its getter reads
    /// back; null when libtorch_cpu or either symbol cannot be found (Windows builds).
    /// </summary>
    internal static bool? SetContextFlag(string setSymbol, string getSymbol, bool value)
    {
        if (LoadedLibTorchCpu() is not { } library) return null;
        if (!NativeLibrary.TryGetExport(library, ContextSymbol, out var context) || !NativeLibrary.TryGetExport(library, setSymbol, out var set)
            || !NativeLibrary.TryGetExport(library, getSymbol, out var get))
            return null;
        unsafe
        {
            var instance = ((delegate* unmanaged<IntPtr>)context)();
            ((delegate* unmanaged<IntPtr, byte, void>)set)(instance, value ? (byte)1 : (byte)0);
            return ((delegate* unmanaged<IntPtr, byte>)get)(instance) != 0;
        }
    }

    /// <summary>
    /// How far this process's native convolution backward pass is from the unfold + matmul one for a 3x3 convolution with
    /// 12 output channels over a batch of 2 (the U-Net output convolution's case): the largest difference of the input
    /// gradient over the largest gradient. About 1e-7 where the kernels are right; on the AVX-512 EPYC of 2026-12 with
    /// oneDNN on it was 0.4-1 or NaN (NaN is returned as such). <c>doctor</c> shows it.
    /// </summary>
    public static double ConvolutionBackwardError()
    {
        TorchRuntime.EnsureLoaded();
        using var scope = torch.NewDisposeScope();
        // Tensors from its own generator, no module: nn.Conv2d would draw its initial weights from the global stream.
        using var generator = new torch.Generator(12);
        var weight = torch.randn([12, 8, 3, 3], generator: generator);
        var bias = torch.randn([12], generator: generator);
        var input = torch.randn([2, 8, 8, 8], generator: generator);
        var target = torch.randn([2, 12, 8, 8], generator: generator);
        torch.Tensor InputGradient(Func<torch.Tensor, torch.Tensor> forward)
        {
            var x = input.detach().clone().requires_grad_();
            forward(x).mul(target).sum().backward();
            return x.grad!.detach().clone();
        }
        var native = InputGradient(x => torch.nn.functional.conv2d(x, weight, bias, padding: [1, 1]));
        var byMatmul = InputGradient(x => Modeling.MatmulConvolution.Conv3x3(x, weight, bias));
        return native.sub(byMatmul).abs().max().item<float>() / Math.Max(byMatmul.abs().max().item<float>(), 1e-30);
    }

    /// <summary>
    /// The libtorch_cpu that TorchSharp uses: the copy the loader preloaded by full path, else the one already mapped
    /// under that soname (a bare-name dlopen returns it instead of mapping a second copy).
    /// </summary>
    internal static IntPtr? LoadedLibTorchCpu()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return null;
        var path = NativeTorchLoader.PreloadedLibTorch.FirstOrDefault(p => Path.GetFileName(p) == "libtorch_cpu.so");
        if (path is not null && NativeLibrary.TryLoad(path, out var preloaded)) return preloaded;
        return NativeLibrary.TryLoad(OperatingSystem.IsMacOS() ? "libtorch_cpu.dylib" : "libtorch_cpu.so", out var handle) ? handle : null;
    }
}

/// <summary>
/// libtorch's NNPACK convolutions, switched off when libtorch loads. On the 2-core EPYC (and the earlier AVX-2 machine)
/// NNPACK cannot initialise ("Unsupported hardware") and libtorch printed that warning once per convolution it
/// considered for it: about 50,000 stderr lines a minute of training, 870,000 in one quickstart. It never ran there, so
/// switching it off changes no number on those machines; where it would run, convolutions go to oneDNN or libtorch's own
/// kernels instead, like everywhere else.
/// </summary>
public static class NnPack
{
    const string SetSymbol = "_ZN2at7Context20setUserEnabledNNPACKEb";
    const string GetSymbol = "_ZNK2at7Context17userEnabledNNPACKEv";

    /// <summary>Whether libtorch may use NNPACK now; null when the switch could not be reached.</summary>
    public static bool? Enabled { get; private set; }

    internal static void SwitchOff() => Enabled = OneDnn.SetContextFlag(SetSymbol, GetSymbol, false);
}
