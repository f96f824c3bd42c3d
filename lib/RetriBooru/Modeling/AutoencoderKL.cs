using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields mirror diffusers parameter names

namespace RetriBooru.Modeling;

/// <summary>diffusers <c>UNetMidBlock2D</c> of the VAE: ResNet, spatial self-attention, ResNet (no time embedding).</summary>
public sealed class VaeMidBlock : nn.Module
{
    readonly ModuleList<Attention> attentions;
    readonly ModuleList<ResnetBlock2D> resnets;

    public VaeMidBlock(long channels, int groups, Device? device) : base("UNetMidBlock2D")
    {
        resnets = new ModuleList<ResnetBlock2D>(new ResnetBlock2D(channels, channels, null, groups, 1e-6, device), new ResnetBlock2D(channels, channels, null, groups, 1e-6, device));
        attentions = new ModuleList<Attention>(new Attention(channels, null, heads: 1, dimHead: channels, qkvBias: true, groupNormGroups: groups, device: device));
        RegisterComponents();
    }

    public Tensor Forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        h = resnets[0].Forward(h, null);
        h = attentions[0].ForwardSpatial(h);
        return resnets[1].Forward(h, null).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>DownEncoderBlock2D</c> / <c>UpDecoderBlock2D</c>: ResNets and an optional resampler.</summary>
public sealed class VaeCoderBlock : nn.Module
{
    readonly ModuleList<ResnetBlock2D> resnets;
    readonly ModuleList<Downsample2D>? downsamplers;
    readonly ModuleList<Upsample2D>? upsamplers;

    public VaeCoderBlock(long inChannels, long outChannels, int layers, int groups, bool down, bool addResampler, Device? device)
        : base(down ? "DownEncoderBlock2D" : "UpDecoderBlock2D")
    {
        resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, 1e-6, device)).ToArray());
        if (addResampler && down) downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, padRightBottom: true, device: device));
        if (addResampler && !down) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, device));
        RegisterComponents();
    }

    public Tensor Forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        foreach (var resnet in resnets) h = resnet.Forward(h, null);
        if (downsamplers is not null) h = downsamplers[0].Forward(h);
        if (upsamplers is not null) h = upsamplers[0].Forward(h);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers VAE <c>Encoder</c>: image -> 2 x latent channels (mean, log-variance).</summary>
public sealed class VaeEncoder : nn.Module
{
    readonly Conv2d conv_in;
    readonly ModuleList<VaeCoderBlock> down_blocks;
    readonly VaeMidBlock mid_block;
    readonly GroupNorm conv_norm_out;
    readonly Conv2d conv_out;

    public VaeEncoder(VaeConfig config, Device? device) : base("Encoder")
    {
        var ch = config.BlockOutChannels;
        conv_in = nn.Conv2d(config.InChannels, ch[0], 3, padding: 1, device: device);
        down_blocks = new ModuleList<VaeCoderBlock>(Enumerable.Range(0, ch.Length).Select(i =>
            new VaeCoderBlock(i == 0 ? ch[0] : ch[i - 1], ch[i], config.LayersPerBlock, config.NormNumGroups, down: true, addResampler: i < ch.Length - 1, device)).ToArray());
        mid_block = new VaeMidBlock(ch[^1], config.NormNumGroups, device);
        conv_norm_out = ModuleInit.GroupNorm(config.NormNumGroups, ch[^1], 1e-6, device);
        conv_out = nn.Conv2d(ch[^1], 2 * config.LatentChannels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = CheckedConvolution.Forward(conv_in, x);
        foreach (var block in down_blocks) h = block.Forward(h);
        h = mid_block.Forward(h);
        return CheckedConvolution.Forward(conv_out, F.silu(conv_norm_out.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers VAE <c>Decoder</c>: latent -> image.</summary>
public sealed class VaeDecoder : nn.Module
{
    readonly Conv2d conv_in;
    readonly VaeMidBlock mid_block;
    readonly ModuleList<VaeCoderBlock> up_blocks;
    readonly GroupNorm conv_norm_out;
    readonly Conv2d conv_out;

    public VaeDecoder(VaeConfig config, Device? device) : base("Decoder")
    {
        var reversed = config.BlockOutChannels.Reverse().ToArray();
        conv_in = nn.Conv2d(config.LatentChannels, reversed[0], 3, padding: 1, device: device);
        mid_block = new VaeMidBlock(reversed[0], config.NormNumGroups, device);
        up_blocks = new ModuleList<VaeCoderBlock>(Enumerable.Range(0, reversed.Length).Select(i =>
            new VaeCoderBlock(i == 0 ? reversed[0] : reversed[i - 1], reversed[i], config.LayersPerBlock + 1, config.NormNumGroups, down: false, addResampler: i < reversed.Length - 1, device)).ToArray());
        conv_norm_out = ModuleInit.GroupNorm(config.NormNumGroups, reversed[^1], 1e-6, device);
        conv_out = nn.Conv2d(reversed[^1], config.OutChannels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = CheckedConvolution.Forward(conv_in, z);
        h = mid_block.Forward(h);
        foreach (var block in up_blocks) h = block.Forward(h);
        return CheckedConvolution.Forward(conv_out, F.silu(conv_norm_out.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The VAE's posterior: a diagonal Gaussian from the encoder's (mean, log-variance) moments.</summary>
public sealed class DiagonalGaussian : IDisposable
{
    readonly Tensor moments;

    public DiagonalGaussian(Tensor moments)
    {
        this.moments = moments;
        var parts = moments.chunk(2, 1);
        Mean = parts[0];
        LogVar = parts[1].Clamped(-30.0, 20.0);
        parts[1].Dispose();
    }

    public Tensor Mean { get; }
    public Tensor LogVar { get; }

    public Tensor Std() => LogVar.Times(0.5).exp();

    /// <summary>mean + std * N(0, 1), with noise from <paramref name="generator"/> for reproducibility.</summary>
    public Tensor Sample(Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var noise = randn(Mean.shape, dtype: Mean.dtype, device: Mean.device, generator: generator);
        return Mean.Plus(Std() * noise).MoveToOuterDisposeScope();
    }

    /// <summary>KL(q || N(0, I)) per sample, summed over latent dimensions.</summary>
    public Tensor Kl()
    {
        using var scope = NewDisposeScope();
        var kl = (Mean.Squared().Plus(LogVar.exp()).Plus(-1.0) - LogVar).Times(0.5);
        return kl.sum([1, 2, 3]).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Mean.Dispose();
        LogVar.Dispose();
        moments.Dispose();
    }
}

/// <summary>diffusers <c>AutoencoderKL</c>: encoder, quant_conv, diagonal Gaussian; post_quant_conv, decoder. Latents are scaled by <see cref="VaeConfig.ScalingFactor"/>.</summary>
public sealed class AutoencoderKL : nn.Module
{
    readonly VaeEncoder encoder;
    readonly VaeDecoder decoder;
    readonly Conv2d quant_conv;
    readonly Conv2d post_quant_conv;

    public VaeConfig Config { get; }

    public AutoencoderKL(VaeConfig config, Device? device = null) : base(nameof(AutoencoderKL))
    {
        Config = config;
        encoder = new VaeEncoder(config, device);
        decoder = new VaeDecoder(config, device);
        quant_conv = nn.Conv2d(2 * config.LatentChannels, 2 * config.LatentChannels, 1, device: device);
        post_quant_conv = nn.Conv2d(config.LatentChannels, config.LatentChannels, 1, device: device);
        RegisterComponents();
    }

    public DiagonalGaussian Encode(Tensor image)
    {
        using var encoded = encoder.Forward(image);
        return new DiagonalGaussian(CheckedConvolution.Forward(quant_conv, encoded));
    }

    public Tensor Decode(Tensor latent)
    {
        using var scope = NewDisposeScope();
        return decoder.Forward(CheckedConvolution.Forward(post_quant_conv, latent)).MoveToOuterDisposeScope();
    }

    /// <summary>Image in [-1, 1] -> scaled latent (posterior sample, or its mean when <paramref name="generator"/> is null and <paramref name="sample"/> is false).</summary>
    public Tensor EncodeToLatent(Tensor image, bool sample = false, Generator? generator = null)
    {
        using var posterior = Encode(image);
        using var z = sample ? posterior.Sample(generator) : posterior.Mean.alias();
        return z.Times(Config.ScalingFactor);
    }

    /// <summary>Scaled latent -> image in (roughly) [-1, 1].</summary>
    public Tensor DecodeFromLatent(Tensor latent)
    {
        using var unscaled = latent.Over(Config.ScalingFactor);
        return Decode(unscaled);
    }
}
