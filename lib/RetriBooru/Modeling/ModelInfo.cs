using RetriBooru.Modeling.Clip;
using RetriBooru.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Modeling;

/// <summary>Parameter counts of one component.</summary>
public sealed record ComponentInfo(string Component, long Parameters, int Tensors);

/// <summary>Parameter counts per component of a config, computed by constructing the real modules on the meta device (no weight memory).</summary>
public static class ModelInfo
{
    public static long CountParameters(nn.Module module) => module.parameters().Sum(p => p.numel());

    public static IReadOnlyList<ComponentInfo> Describe(ModelConfig config)
    {
        TorchRuntime.EnsureLoaded();
        var result = new List<ComponentInfo>();
        using (var unet = new UNet2DConditionModel(config.Unet, META)) result.Add(Info("unet", unet));
        if (config.Vae is not null)
            using (var vae = new AutoencoderKL(config.Vae, META)) result.Add(Info("vae", vae));
        using (var text = new ClipTextModel(config.TextEncoder, META)) result.Add(Info("text_encoder", text));
        return result;
    }

    static ComponentInfo Info(string name, nn.Module module) => new(name, CountParameters(module), module.parameters().Count());
}
