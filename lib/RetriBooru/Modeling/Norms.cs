using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RetriBooru.Modeling;

/// <summary>
/// Normalisation layers with the standard initialisation. TorchSharp 0.107's <c>nn.GroupNorm</c> leaves
/// its affine weight and bias uninitialised (garbage, often NaN); PyTorch initialises them to 1 and 0.
/// Every GroupNorm in the workbench is made here.
/// </summary>
public static class Norms
{
    public static GroupNorm GroupNorm(long groups, long channels, double eps = 1e-5, Device? device = null)
    {
        var norm = nn.GroupNorm(groups, channels, eps, device: device);
        using var noGrad = no_grad();
        norm.weight!.fill_(1.0);
        norm.bias!.zero_();
        return norm;
    }
}
