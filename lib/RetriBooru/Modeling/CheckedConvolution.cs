using System.Collections.Concurrent;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

namespace RetriBooru.Modeling;

/// <summary>
/// Every convolution of the models runs through here. On the AMD EPYC with AVX-512 of 2026-12, libtorch's oneDNN kernels
/// compute some convolution shapes wrong for batches above 1 (forward outputs and input gradients 20-50% of their size
/// off, the result also depending on the thread count): measured 3x3 forward with input channels above 16 and not a
/// multiple of 16; 3x3 input gradients with output channels not a multiple of 16; some stride-2 shapes (40 and 48 input
/// channels); 1x1 kernels and single-image batches were right (docs/troubleshooting.md, the section on outputs that change
/// with the thread count). No simple rule covers the map and another CPU has another one, so the first time a shape
/// (channels, kernel, stride, padding, thread count) meets a batch above 1 with oneDNN on, it is computed both ways on
/// random data, forward and both gradients, against <see cref="MatmulConvolution"/>; a shape that disagrees runs by
/// matmul from then on. Shapes oneDNN gets right keep its speed (the tiny and SD1.5 configurations' shapes all pass
/// here, so their numbers are unchanged).
/// </summary>
public static class CheckedConvolution
{
    /// <summary>Largest relative difference (to the reference's largest value) accepted as rounding.</summary>
    public const double Tolerance = 1e-3;

    /// <summary>The check runs on pictures of at most this size: the faults measured did not depend on it (4 to 32 px).</summary>
    const int CheckSize = 16;

    readonly record struct Shape(long InChannels, long OutChannels, long KernelH, long KernelW, long StrideH, long StrideW, long PadH, long PadW, long Height, long Width, int Threads);

    static readonly ConcurrentDictionary<Shape, bool> TrustOneDnn = new();

    /// <summary>The shapes this process found oneDNN computing wrong, and so runs by matmul (for doctor and logs).</summary>
    public static IReadOnlyList<string> RoutedShapes =>
        TrustOneDnn.Where(kv => !kv.Value).Select(kv => Describe(kv.Key)).Order(StringComparer.Ordinal).ToList();

    /// <summary>A module that may be a convolution (a 1x1 projection or a Linear; a step of a Sequential).</summary>
    public static Tensor Call(nn.Module<Tensor, Tensor> module, Tensor input) => module is Conv2d conv ? Forward(conv, input) : module.call(input);

    public static Tensor Forward(Conv2d conv, Tensor input)
    {
        if (!NeedsCheck(conv, input)) return conv.call(input);
        var weight = conv.weight ?? throw new InvalidOperationException("the convolution has no weight");
        var shape = new Shape(weight.shape[1], weight.shape[0], weight.shape[2], weight.shape[3], conv.stride![0], conv.stride[1],
            conv.padding![0], conv.padding[1], Math.Min(input.shape[2], CheckSize), Math.Min(input.shape[3], CheckSize), get_num_threads());
        if (TrustOneDnn.GetOrAdd(shape, OneDnnAgrees)) return conv.call(input);
        var output = MatmulConvolution.Convolve(input, weight, conv.bias, (shape.StrideH, shape.StrideW), (shape.PadH, shape.PadW));
        MatmulConvolution.Observer?.Invoke(conv, output);
        return output;
    }

    /// <summary>Whether oneDNN computes a convolution of this shape right here (forward and both gradients, batch 2).</summary>
    public static bool OneDnnAgrees(long inChannels, long outChannels, int kernel, int stride = 1, int padding = -1, int size = 8)
    {
        TorchRuntime.EnsureLoaded();
        if (OneDnn.Enabled != true) return true;
        int pad = padding < 0 ? kernel / 2 : padding;
        return OneDnnAgrees(new Shape(inChannels, outChannels, kernel, kernel, stride, stride, pad, pad, size, size, get_num_threads()));
    }

    static bool NeedsCheck(Conv2d conv, Tensor input) =>
        OneDnn.Enabled == true && input.dim() == 4 && input.shape[0] > 1 && conv.groups == 1 && (conv.dilation is null || conv.dilation.All(d => d == 1))
        && conv.padding_mode == PaddingModes.Zeros && conv.padding_type is null && conv.padding is not null && conv.stride is not null && input.device_type == DeviceType.CPU && input.dtype == ScalarType.Float32;

    static bool OneDnnAgrees(Shape shape)
    {
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        // Its own generator: the global stream is the models' (drawing from it would change every later initialisation).
        using var generator = new Generator(20261202);
        long height = Math.Max(shape.Height, shape.KernelH), width = Math.Max(shape.Width, shape.KernelW);
        var input = randn([2, shape.InChannels, height, width], generator: generator);
        var weight = randn([shape.OutChannels, shape.InChannels, shape.KernelH, shape.KernelW], generator: generator).Over(Math.Sqrt(shape.InChannels * shape.KernelH * shape.KernelW));
        var bias = randn([shape.OutChannels], generator: generator);
        (Tensor Output, Tensor InputGrad, Tensor WeightGrad) Run(Func<Tensor, Tensor, Tensor> convolve)
        {
            var x = input.detach().clone().requires_grad_();
            var w = weight.detach().clone().requires_grad_();
            var y = convolve(x, w);
            using var upstream = new Generator(7);
            (y * randn(y.shape, generator: upstream)).sum().backward();
            return (y.detach(), x.grad!, w.grad!);
        }
        var oneDnn = Run((x, w) => F.conv2d(x, w, bias, strides: [shape.StrideH, shape.StrideW], padding: [shape.PadH, shape.PadW]));
        var reference = Run((x, w) => MatmulConvolution.Convolve(x, w, bias, (shape.StrideH, shape.StrideW), (shape.PadH, shape.PadW)));
        static bool Close(Tensor a, Tensor b) =>
            (a - b).abs().max().item<float>() is var difference && !double.IsNaN(difference) && difference <= Tolerance * Math.Max(1e-12, b.abs().max().item<float>());
        return Close(oneDnn.Output, reference.Output) && Close(oneDnn.InputGrad, reference.InputGrad) && Close(oneDnn.WeightGrad, reference.WeightGrad);
    }

    static string Describe(Shape s) =>
        $"{s.InChannels}->{s.OutChannels} {s.KernelH}x{s.KernelW} stride {s.StrideH} padding {s.PadH} ({s.Threads} thread{(s.Threads == 1 ? "" : "s")})";
}
