using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

namespace RetriBooru.Modeling;

/// <summary>Module constructors that need a fix-up on TorchSharp 0.107.</summary>
public static class ModuleInit
{
    /// <summary>
    /// nn.GroupNorm with weight = 1, bias = 0. TorchSharp 0.107's GroupNorm allocates its affine parameters
    /// with torch.empty and never initialises them (uninitialised memory, sometimes 1e37 or NaN).
    /// </summary>
    public static GroupNorm GroupNorm(long groups, long channels, double eps, Device? device = null)
    {
        var norm = nn.GroupNorm(groups, channels, eps, device: device);
        if (device?.type != DeviceType.META)
        {
            using var noGrad = no_grad();
            norm.weight.FillInPlace(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }
}

/// <summary>
/// Seeded weight initialisation from a private generator, so a model's initial weights depend only on the
/// seed — not on whatever else drew from torch's global generator (other threads, other tests). The
/// distributions are PyTorch's defaults: Linear/Conv weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
/// embeddings N(0, 1), normalisation weights 1 and biases 0.
/// </summary>
public static class SeededInit
{
    public static void Apply(nn.Module module, long seed)
    {
        using var generator = new Generator(0, CPU);
        generator.manual_seed(seed);
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (name, p) in parameters)
        {
            using var scope = NewDisposeScope();
            var owner = name.Contains('.') ? name[..name.LastIndexOf('.')] : "";
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            var weight = parameters.GetValueOrDefault(owner.Length == 0 ? "weight" : owner + ".weight");
            if (leaf == "weight" && p.dim() >= 2 && (owner.EndsWith("embedding", StringComparison.Ordinal)))
                p.copy_(randn(p.shape, generator: generator));
            else if (weight is not null && weight.dim() >= 2)
            {
                long fanIn = weight.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                double bound = 1.0 / Math.Sqrt(fanIn);
                p.copy_(rand(p.shape, generator: generator).Times(2).Plus(-1).Times(bound));
            }
            else if (leaf == "weight") p.FillInPlace(1.0);
            else p.zero_();
        }
    }
}
