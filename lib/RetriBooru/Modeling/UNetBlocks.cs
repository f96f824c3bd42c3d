using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

#pragma warning disable IDE1006 // snake_case fields mirror diffusers parameter names

namespace RetriBooru.Modeling;

/// <summary>
/// diffusers <c>CrossAttnDownBlock2D</c> (with attentions) or <c>DownBlock2D</c> (without): ResNet blocks, each
/// optionally followed by a spatial transformer, then an optional stride-2 downsampler. Every intermediate
/// output is a skip connection for the decoder.
/// </summary>
public sealed class DownBlock : nn.Module
{
    readonly ModuleList<ResnetBlock2D> resnets;
    readonly ModuleList<Transformer2DModel>? attentions;
    readonly ModuleList<Downsample2D>? downsamplers;

    public DownBlock(long inChannels, long outChannels, long tembChannels, int layers, bool crossAttention, bool addDownsample, UNetConfig config, Device? device)
        : base(crossAttention ? "CrossAttnDownBlock2D" : "DownBlock2D")
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels, config.NormNumGroups, config.NormEps, device)).ToArray());
        if (crossAttention)
            attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => new Transformer2DModel(outChannels, config.AttentionHeads, config.CrossAttentionDim, config.NormNumGroups, config.UseLinearProjection, device: device)).ToArray());
        if (addDownsample) downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, device: device));
        RegisterComponents();
    }

    /// <summary>Number of skip tensors this block emits.</summary>
    public int SkipCount => resnets.Count + (downsamplers is null ? 0 : 1);

    public Tensor Forward(Tensor h, Tensor temb, Tensor context, List<Tensor> skips)
    {
        for (int i = 0; i < resnets.Count; i++)
        {
            var next = resnets[i].Forward(h, temb);
            if (attentions is not null)
                next = attentions[i].Forward(next, context);
            h = next;
            skips.Add(h);
        }
        if (downsamplers is not null)
        {
            h = downsamplers[0].Forward(h);
            skips.Add(h);
        }
        return h;
    }
}

/// <summary>diffusers <c>UNetMidBlock2DCrossAttn</c>: ResNet, (transformer, ResNet) per layer.</summary>
public sealed class UNetMidBlock2DCrossAttn : nn.Module
{
    readonly ModuleList<Transformer2DModel> attentions;
    readonly ModuleList<ResnetBlock2D> resnets;

    public UNetMidBlock2DCrossAttn(long channels, long tembChannels, UNetConfig config, Device? device, int layers = 1) : base(nameof(UNetMidBlock2DCrossAttn))
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers + 1)
            .Select(_ => new ResnetBlock2D(channels, channels, tembChannels, config.NormNumGroups, config.NormEps, device)).ToArray());
        attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
            .Select(_ => new Transformer2DModel(channels, config.AttentionHeads, config.CrossAttentionDim, config.NormNumGroups, config.UseLinearProjection, device: device)).ToArray());
        RegisterComponents();
    }

    public Tensor Forward(Tensor h, Tensor temb, Tensor context)
    {
        using var scope = NewDisposeScope();
        h = resnets[0].Forward(h, temb);
        for (int i = 0; i < attentions.Count; i++)
        {
            h = attentions[i].Forward(h, context);
            h = resnets[i + 1].Forward(h, temb);
        }
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers <c>CrossAttnUpBlock2D</c> / <c>UpBlock2D</c>: per layer, concatenate the next skip connection
/// (taken from the end of the list), ResNet, optional transformer; then an optional upsampler.
/// </summary>
public sealed class UpBlock : nn.Module
{
    readonly ModuleList<ResnetBlock2D> resnets;
    readonly ModuleList<Transformer2DModel>? attentions;
    readonly ModuleList<Upsample2D>? upsamplers;

    public UpBlock(long inChannels, long prevOutputChannels, long outChannels, long tembChannels, int layers, bool crossAttention, bool addUpsample, UNetConfig config, Device? device)
        : base(crossAttention ? "CrossAttnUpBlock2D" : "UpBlock2D")
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers).Select(i =>
        {
            long skipChannels = i == layers - 1 ? inChannels : outChannels;
            long resnetIn = i == 0 ? prevOutputChannels : outChannels;
            return new ResnetBlock2D(resnetIn + skipChannels, outChannels, tembChannels, config.NormNumGroups, config.NormEps, device);
        }).ToArray());
        if (crossAttention)
            attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => new Transformer2DModel(outChannels, config.AttentionHeads, config.CrossAttentionDim, config.NormNumGroups, config.UseLinearProjection, device: device)).ToArray());
        if (addUpsample) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, device));
        RegisterComponents();
    }

    public int SkipCount => resnets.Count;

    /// <summary>Consumes <see cref="SkipCount"/> skips from the end of <paramref name="skips"/>; <paramref name="upsampleSize"/> is the next level's spatial size.</summary>
    public Tensor Forward(Tensor h, Tensor temb, Tensor context, List<Tensor> skips, long[]? upsampleSize)
    {
        using var scope = NewDisposeScope();
        for (int i = 0; i < resnets.Count; i++)
        {
            var skip = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            h = resnets[i].Forward(cat([h, skip], 1), temb);
            if (attentions is not null) h = attentions[i].Forward(h, context);
        }
        if (upsamplers is not null) h = upsamplers[0].Forward(h, upsampleSize);
        return h.MoveToOuterDisposeScope();
    }
}
