using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields become state-dict keys
using RetriBooru.Settings;

namespace RetriBooru.Modeling;

/// <summary>
/// The text-only baseline: the base U-Net, references ignored. Its decoder is trainable (like RetriNet's),
/// so "training" it on the same data for the same steps is a fair comparison: any gain of RetriNet then
/// comes from the references, not from extra fine-tuning.
/// </summary>
public sealed class TextOnlyModel : IReferenceConditionedModel
{
    public TextOnlyModel(UNet2DConditionModel unet)
    {
        Unet = unet;
        UNetLevels.SetRequiresGrad(unet.EncoderModules.Concat(unet.MidModules), false);
    }

    public UNet2DConditionModel Unet { get; }
    public ModelKind Kind => ModelKind.TextOnly;
    public nn.Module Module => Unet;
    public IReadOnlyList<Parameter> TrainableParameters() => Unet.DecoderModules.SelectMany(m => m.parameters()).ToList();
    public Tensor Predict(Tensor noisy, Tensor timesteps, Tensor textContext, ReferenceBatch? references) => Unet.Forward(noisy, timesteps, textContext);
}

/// <summary>
/// ControlNet-style baseline (Zhang et al. 2023, diffusers <c>ControlNetModel</c> names): a trainable copy of
/// the U-Net's encoder and mid block reads the noisy sample plus a spatial condition and returns one
/// zero-convolved residual per down-path skip and one for the mid block, which the frozen base U-Net adds.
/// The condition is the mean of the present references in model space (a spatial hint), which is why this
/// family copies layout and background from its references: the leakage the RetriBooru paper targets.
/// Deviation from the original: the hint is already in model space, so the condition embedding keeps the
/// resolution (SD ControlNets take 8x larger pixel hints and downsample them).
/// </summary>
public sealed class ControlNetModel : nn.Module, IReferenceConditionedModel
{
    readonly UNet2DConditionModel unet;
    readonly Conv2d conv_in;
    readonly TimestepEmbedding time_embedding;
    readonly PooledTextEmbedding? add_embedding;
    readonly Sequential controlnet_cond_embedding;
    readonly ModuleList<DownBlock> down_blocks;
    readonly UNetMidBlock2DCrossAttn mid_block;
    readonly ModuleList<Conv2d> controlnet_down_blocks;
    readonly Conv2d controlnet_mid_block;

    public ModelKind Kind => ModelKind.ControlNet;
    public nn.Module Module => this;
    public UNet2DConditionModel Unet => unet;

    public ControlNetModel(UNet2DConditionModel baseUnet, long initSeed = 0) : base(nameof(ControlNetModel))
    {
        var config = baseUnet.Config;
        var device = baseUnet.parameters().First().device;
        var channels = config.BlockOutChannels;
        unet = baseUnet;
        conv_in = nn.Conv2d(config.InChannels, channels[0], 3, padding: 1, device: device);
        time_embedding = new TimestepEmbedding(channels[0], config.TimeEmbedDim, device);
        add_embedding = PooledTextEmbedding.For(config, device);
        var last = nn.Conv2d(32, channels[0], 3, padding: 1, device: device);
        controlnet_cond_embedding = nn.Sequential(
            ("conv_in", nn.Conv2d(config.InChannels, 16, 3, padding: 1, device: device)), ("act_0", nn.SiLU()),
            ("blocks_0", nn.Conv2d(16, 32, 3, padding: 1, device: device)), ("act_1", nn.SiLU()),
            ("conv_out", last));
        down_blocks = UNetLevels.DownBlocks(config, device);
        mid_block = new UNetMidBlock2DCrossAttn(channels[^1], config.TimeEmbedDim, config, device);
        // One zero conv per skip, with that skip's channels: conv_in, then per level its ResNets and downsampler.
        var skipChannels = new List<long> { channels[0] };
        for (int l = 0; l < channels.Length; l++)
        {
            for (int k = 0; k < config.LayersPerBlock; k++) skipChannels.Add(channels[l]);
            if (l < channels.Length - 1) skipChannels.Add(channels[l]);
        }
        controlnet_down_blocks = new ModuleList<Conv2d>(skipChannels.Select(c => ZeroConv(c, device)).ToArray());
        controlnet_mid_block = ZeroConv(channels[^1], device);
        RegisterComponents();
        SeededInit.Apply(controlnet_cond_embedding, initSeed);
        using (no_grad()) { nn.init.zeros_(last.weight); nn.init.zeros_(last.bias); }
        UNetLevels.CopyMatchingParameters(baseUnet, this);
        UNetLevels.SetRequiresGrad([baseUnet], false);
    }

    static Conv2d ZeroConv(long channels, Device device)
    {
        var conv = nn.Conv2d(channels, channels, 1, device: device);
        using var noGrad = no_grad();
        nn.init.zeros_(conv.weight);
        nn.init.zeros_(conv.bias);
        return conv;
    }

    public IReadOnlyList<Parameter> TrainableParameters() =>
        new nn.Module?[] { conv_in, time_embedding, add_embedding, controlnet_cond_embedding, down_blocks, mid_block, controlnet_down_blocks, controlnet_mid_block }
            .OfType<nn.Module>().SelectMany(m => m.parameters()).ToList();

    public Tensor Predict(Tensor noisy, Tensor timesteps, Tensor textContext, ReferenceBatch? references)
    {
        if (references is null) return unet.Forward(noisy, timesteps, textContext);
        references.Validate();
        using var scope = NewDisposeScope();
        var weights = references.Present.to(noisy.dtype);
        var count = weights.sum(1).AtLeast(1).view(-1, 1, 1, 1);
        var hint = (references.Images * weights.view(weights.shape[0], weights.shape[1], 1, 1, 1)).sum(1) / count;

        var config = unet.Config;
        long batch = noisy.shape[0];
        var t = timesteps.dim() == 0 ? timesteps.expand(batch) : timesteps;
        var temb = UNet2DConditionModel.TimeEmbedding(time_embedding, add_embedding, config, t, textContext, noisy.dtype);
        var embedded = hint;
        foreach (var (_, step) in controlnet_cond_embedding.named_children()) embedded = CheckedConvolution.Call((nn.Module<Tensor, Tensor>)step, embedded);
        var h = CheckedConvolution.Forward(conv_in, noisy).Plus(embedded);
        var skips = new List<Tensor> { h };
        foreach (var block in down_blocks) h = block.Forward(h, temb, textContext, skips);
        h = mid_block.Forward(h, temb, textContext);
        // Samples without references get no residuals.
        var any = references.Present.any(1).to(noisy.dtype).view(-1, 1, 1, 1);
        var residuals = skips.Select((s, i) => CheckedConvolution.Forward(controlnet_down_blocks[i], s) * any).ToList();
        var mid = CheckedConvolution.Forward(controlnet_mid_block, h) * any;
        return unet.Forward(noisy, timesteps, textContext, residuals, mid).MoveToOuterDisposeScope();
    }
}
