using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields mirror diffusers parameter names

namespace RetriBooru.Modeling;

/// <summary>
/// What the U-Net's encoder half produced: the time embedding, every down-path skip tensor (conv_in output
/// first, in diffusers' order) and the mid block's output. A branch (ControlNet, RetriNet) reads these and
/// feeds the decoder through <see cref="UNet2DConditionModel.Decode"/>.
/// </summary>
public sealed record UNetEncoding(Tensor TimeEmbedding, IReadOnlyList<Tensor> DownResiduals, Tensor Mid);

/// <summary>
/// Called before up block <c>index</c> (0 = deepest) with its input hidden state; returns the (possibly
/// modified) hidden state. RetriNet uses it to add retrieval features into the matching decoder block.
/// </summary>
public delegate Tensor UpBlockInjector(int index, Tensor hidden);

/// <summary>
/// diffusers <c>UNet2DConditionModel</c> (Stable Diffusion 1.x structure). Parameter names equal diffusers'
/// state-dict keys. <see cref="Forward"/> accepts ControlNet-style additional residuals; <see cref="Encode"/>
/// and <see cref="Decode"/> split the pass for branches that read the encoder and inject into the decoder.
/// </summary>
public sealed class UNet2DConditionModel : nn.Module
{
    readonly Conv2d conv_in;
    readonly TimestepEmbedding time_embedding;
    readonly PooledTextEmbedding? add_embedding;
    readonly ModuleList<DownBlock> down_blocks;
    readonly UNetMidBlock2DCrossAttn mid_block;
    readonly ModuleList<UpBlock> up_blocks;
    readonly GroupNorm conv_norm_out;
    readonly Conv2d conv_out;

    public UNetConfig Config { get; }

    public UNet2DConditionModel(UNetConfig config, Device? device = null) : base(nameof(UNet2DConditionModel))
    {
        config.Validate();
        Config = config;
        var channels = config.BlockOutChannels;
        int levels = channels.Length;
        long temb = config.TimeEmbedDim;

        conv_in = nn.Conv2d(config.InChannels, channels[0], 3, padding: 1, device: device);
        time_embedding = new TimestepEmbedding(channels[0], temb, device);
        add_embedding = PooledTextEmbedding.For(config, device);

        var downs = new List<DownBlock>();
        long output = channels[0];
        for (int i = 0; i < levels; i++)
        {
            long input = output;
            output = channels[i];
            downs.Add(new DownBlock(input, output, temb, config.LayersPerBlock, config.DownBlockTypes[i] == "CrossAttnDownBlock2D",
                addDownsample: i < levels - 1, config, device));
        }
        down_blocks = new ModuleList<DownBlock>(downs.ToArray());

        mid_block = new UNetMidBlock2DCrossAttn(channels[^1], temb, config, device);

        var reversed = channels.Reverse().ToArray();
        var ups = new List<UpBlock>();
        output = reversed[0];
        for (int i = 0; i < levels; i++)
        {
            long prevOutput = output;
            output = reversed[i];
            long input = reversed[Math.Min(i + 1, levels - 1)];
            ups.Add(new UpBlock(input, prevOutput, output, temb, config.LayersPerBlock + 1, config.UpBlockTypes[i] == "CrossAttnUpBlock2D",
                addUpsample: i < levels - 1, config, device));
        }
        up_blocks = new ModuleList<UpBlock>(ups.ToArray());

        conv_norm_out = ModuleInit.GroupNorm(config.NormNumGroups, channels[0], config.NormEps, device);
        conv_out = nn.Conv2d(channels[0], config.OutChannels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    /// <summary>Time embedding (with the pooled-text layer when the config has it), conv_in and the down blocks (frozen in RetriNet).</summary>
    public IReadOnlyList<nn.Module> EncoderModules => add_embedding is null ? [time_embedding, conv_in, down_blocks] : [time_embedding, add_embedding, conv_in, down_blocks];
    /// <summary>The mid block (frozen in RetriNet).</summary>
    public IReadOnlyList<nn.Module> MidModules => [mid_block];
    /// <summary>Up blocks and output head (trainable in RetriNet).</summary>
    public IReadOnlyList<nn.Module> DecoderModules => [up_blocks, conv_norm_out, conv_out];
    public int UpBlockCount => up_blocks.Count;

    /// <summary>Number of down-path skip tensors (length of the ControlNet residual list).</summary>
    public int DownResidualCount => 1 + down_blocks.Sum(b => b.SkipCount);

    /// <summary>
    /// Full pass: sample [B, C, H, W], timesteps [B] (or scalar), encoder hidden states [B, T, D]. Optional
    /// ControlNet residuals are added to every down-path skip and to the mid block output.
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timesteps, Tensor encoderHiddenStates,
        IReadOnlyList<Tensor>? downBlockAdditionalResiduals = null, Tensor? midBlockAdditionalResidual = null)
    {
        using var scope = NewDisposeScope();
        var encoding = Encode(sample, timesteps, encoderHiddenStates);
        return Decode(encoding, encoderHiddenStates, downBlockAdditionalResiduals, midBlockAdditionalResidual).MoveToOuterDisposeScope();
    }

    /// <summary>Time embedding, conv_in, down blocks and mid block. Tensors land in the caller's dispose scope.</summary>
    public UNetEncoding Encode(Tensor sample, Tensor timesteps, Tensor encoderHiddenStates)
    {
        long batch = sample.shape[0];
        var t = timesteps.dim() == 0 ? timesteps.expand(batch) : timesteps;
        if (t.shape[0] != batch) throw new ArgumentException($"timesteps has {t.shape[0]} entries for a batch of {batch}");
        var temb = TimeEmbedding(t, encoderHiddenStates, sample.dtype);

        var h = CheckedConvolution.Forward(conv_in, sample);
        var skips = new List<Tensor> { h };
        foreach (var block in down_blocks) h = block.Forward(h, temb, encoderHiddenStates, skips);
        var mid = mid_block.Forward(h, temb, encoderHiddenStates);
        return new UNetEncoding(temb, skips, mid);
    }

    /// <summary>The embedding every ResNet block reads: the timestep's, plus the pooled prompt's when the config adds it.</summary>
    public Tensor TimeEmbedding(Tensor timesteps, Tensor encoderHiddenStates, ScalarType dtype) =>
        TimeEmbedding(time_embedding, add_embedding, Config, timesteps, encoderHiddenStates, dtype);

    /// <summary>The same for a branch's copies of the two modules (ControlNet's encoder, RetriNet's retrieval encoder).</summary>
    public static Tensor TimeEmbedding(TimestepEmbedding time, PooledTextEmbedding? text, UNetConfig config, Tensor timesteps, Tensor context, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var proj = TimestepProjection.Embed(timesteps, config.BlockOutChannels[0], config.FlipSinToCos, config.FreqShift);
        var temb = time.Forward(proj.to(dtype));
        if (text is not null) temb = temb.Plus(text.Forward(context));
        return temb.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Up blocks and output head. <paramref name="downBlockAdditionalResiduals"/>/<paramref name="midBlockAdditionalResidual"/>
    /// are the ControlNet inputs; <paramref name="injector"/> may modify each up block's input.
    /// </summary>
    public Tensor Decode(UNetEncoding encoding, Tensor encoderHiddenStates,
        IReadOnlyList<Tensor>? downBlockAdditionalResiduals = null, Tensor? midBlockAdditionalResidual = null, UpBlockInjector? injector = null)
    {
        using var scope = NewDisposeScope();
        var skips = new List<Tensor>(encoding.DownResiduals);
        if (downBlockAdditionalResiduals is not null)
        {
            if (downBlockAdditionalResiduals.Count != skips.Count)
                throw new ArgumentException($"expected {skips.Count} down-block residuals, got {downBlockAdditionalResiduals.Count}");
            for (int i = 0; i < skips.Count; i++) skips[i] = skips[i].Plus(downBlockAdditionalResiduals[i]);
        }
        var h = midBlockAdditionalResidual is null ? encoding.Mid : encoding.Mid.Plus(midBlockAdditionalResidual);
        for (int i = 0; i < up_blocks.Count; i++)
        {
            if (injector is not null) h = injector(i, h);
            var block = up_blocks[i];
            long[]? upsampleSize = null;
            if (i < up_blocks.Count - 1)
            {
                var next = skips[skips.Count - block.SkipCount - 1];
                upsampleSize = [next.shape[2], next.shape[3]];
            }
            h = block.Forward(h, encoding.TimeEmbedding, encoderHiddenStates, skips, upsampleSize);
        }
        // Not conv_out.call: see MatmulConvolution (same parameters, no oneDNN backward for this layer).
        var output = MatmulConvolution.Conv3x3(conv_out, F.silu(conv_norm_out.call(h)));
        return output.MoveToOuterDisposeScope();
    }
}
