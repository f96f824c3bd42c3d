using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

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
            norm.weight.fill_(1.0);
            norm.bias!.zero_();
        }
        return norm;
    }
}
