using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

// Field names in this folder are snake_case on purpose: TorchSharp registers submodules by field name, so
// they mirror diffusers' parameter names and a diffusers state-dict key is a module path here.
#pragma warning disable IDE1006

namespace RetriBooru.Modeling;

/// <summary>diffusers <c>ResnetBlock2D</c>: GroupNorm-SiLU-Conv, time embedding added, GroupNorm-SiLU-Conv, residual.</summary>
public sealed class ResnetBlock2D : nn.Module
{
    readonly GroupNorm norm1;
    readonly Conv2d conv1;
    readonly Linear? time_emb_proj;
    readonly GroupNorm norm2;
    readonly Conv2d conv2;
    readonly Conv2d? conv_shortcut;

    public ResnetBlock2D(long inChannels, long outChannels, long? tembChannels, int groups, double eps, Device? device = null)
        : base(nameof(ResnetBlock2D))
    {
        norm1 = ModuleInit.GroupNorm(groups, inChannels, eps, device);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, padding: 1, device: device);
        if (tembChannels is long t) time_emb_proj = nn.Linear(t, outChannels, device: device);
        norm2 = ModuleInit.GroupNorm(groups, outChannels, eps, device);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, padding: 1, device: device);
        if (inChannels != outChannels) conv_shortcut = nn.Conv2d(inChannels, outChannels, 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? temb)
    {
        using var scope = NewDisposeScope();
        var h = CheckedConvolution.Forward(conv1, F.silu(norm1.call(x)));
        if (time_emb_proj is not null && temb is not null)
            h = h.Plus(time_emb_proj.call(F.silu(temb)).unsqueeze(-1).unsqueeze(-1));
        h = CheckedConvolution.Forward(conv2, F.silu(norm2.call(h)));
        var shortcut = conv_shortcut is null ? x : CheckedConvolution.Forward(conv_shortcut, x);
        return shortcut.Plus(h).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>Downsample2D</c> (3x3 conv, stride 2).</summary>
public sealed class Downsample2D : nn.Module
{
    readonly Conv2d conv;
    readonly bool padRightBottom;

    /// <param name="padRightBottom">The VAE encoder's variant: no conv padding, one extra pixel padded right and bottom.</param>
    public Downsample2D(long channels, bool padRightBottom = false, Device? device = null) : base(nameof(Downsample2D))
    {
        this.padRightBottom = padRightBottom;
        conv = nn.Conv2d(channels, channels, 3, stride: 2, padding: padRightBottom ? 0 : 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        if (!padRightBottom) return CheckedConvolution.Forward(conv, x);
        using var padded = F.pad(x, [0, 1, 0, 1]);
        return CheckedConvolution.Forward(conv, padded);
    }
}

/// <summary>diffusers <c>Upsample2D</c> (nearest 2x, or to an explicit size, then 3x3 conv).</summary>
public sealed class Upsample2D : nn.Module
{
    readonly Conv2d conv;

    public Upsample2D(long channels, Device? device = null) : base(nameof(Upsample2D))
    {
        conv = nn.Conv2d(channels, channels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, long[]? size = null)
    {
        using var up = size is null
            ? F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : F.interpolate(x, size: size, mode: InterpolationMode.Nearest);
        return CheckedConvolution.Forward(conv, up);
    }
}

/// <summary>
/// A second attention over other tokens that shares an attention's queries and is added to its output
/// (IP-Adapter's decoupled cross-attention). Returns [B, heads, N, dimHead], or null to add nothing.
/// </summary>
public interface IDecoupledAttention
{
    Tensor? Attend(Tensor query);
}

/// <summary>
/// diffusers <c>Attention</c>: multi-head (self or cross) attention with to_q/to_k/to_v and to_out.0. With
/// <c>groupNormGroups</c> it is the VAE's spatial self-attention (group norm, [B,C,H,W] in and out, residual).
/// </summary>
public sealed class Attention : nn.Module
{
    readonly GroupNorm? group_norm;
    readonly Linear to_q;
    readonly Linear to_k;
    readonly Linear to_v;
    readonly ModuleList<nn.Module> to_out;
    readonly int heads;

    public Attention(long queryDim, long? crossAttentionDim, int heads, long dimHead, bool qkvBias = false, int? groupNormGroups = null,
        double groupNormEps = 1e-6, Device? device = null) : base(nameof(Attention))
    {
        long inner = heads * dimHead;
        long contextDim = crossAttentionDim ?? queryDim;
        this.heads = heads;
        InnerDim = inner;
        if (groupNormGroups is int g) group_norm = ModuleInit.GroupNorm(g, queryDim, groupNormEps, device);
        to_q = nn.Linear(queryDim, inner, hasBias: qkvBias, device: device);
        to_k = nn.Linear(contextDim, inner, hasBias: qkvBias, device: device);
        to_v = nn.Linear(contextDim, inner, hasBias: qkvBias, device: device);
        to_out = new ModuleList<nn.Module>(nn.Linear(inner, queryDim, device: device), nn.Dropout(0.0));
        RegisterComponents();
    }

    public int Heads => heads;
    public long InnerDim { get; }

    // Per thread: the trainer and the sampler run parts of one batch on several threads at once, each part with its own references.
    readonly ThreadLocal<IDecoupledAttention?> _decoupled = new();

    /// <summary>
    /// Set by a branch (IP-Adapter) for the duration of a forward pass on the calling thread; null otherwise. Another
    /// thread's forward pass through the same module sees its own value.
    /// </summary>
    public IDecoupledAttention? Decoupled { get => _decoupled.Value; set => _decoupled.Value = value; }

    /// <summary>Sequence attention: x [B, N, C], context [B, M, Cc] (null = self-attention), optional additive mask.</summary>
    public Tensor Forward(Tensor x, Tensor? context = null, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        var ctx = context ?? x;
        long b = x.shape[0], n = x.shape[1], m = ctx.shape[1];
        var q = to_q.call(x).view(b, n, heads, -1).transpose(1, 2);
        var k = to_k.call(ctx).view(b, m, heads, -1).transpose(1, 2);
        var v = to_v.call(ctx).view(b, m, heads, -1).transpose(1, 2);
        var attended = F.scaled_dot_product_attention(q, k, v, attn_mask: mask);
        if (Decoupled?.Attend(q) is Tensor extra) attended = attended.Plus(extra);
        var merged = attended.transpose(1, 2).reshape(b, n, -1);
        return ((Linear)to_out[0]).call(merged).MoveToOuterDisposeScope();
    }

    /// <summary>Spatial self-attention over a [B, C, H, W] map with group norm and residual (VAE mid block).</summary>
    public Tensor ForwardSpatial(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var normed = group_norm is null ? x : group_norm.call(x);
        var seq = normed.view(b, c, h * w).transpose(1, 2);
        var attended = Forward(seq);
        var back = attended.transpose(1, 2).reshape(b, c, h, w);
        return back.Plus(x).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>GEGLU</c>: one projection to 2x inner, value * GELU(gate).</summary>
public sealed class GEGLU : nn.Module
{
    readonly Linear proj;

    public GEGLU(long dimIn, long dimOut, Device? device = null) : base(nameof(GEGLU))
    {
        proj = nn.Linear(dimIn, dimOut * 2, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var parts = proj.call(x).chunk(2, -1);
        return (parts[0] * F.gelu(parts[1])).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>FeedForward</c> with GEGLU: net.0 (GEGLU), net.1 (dropout), net.2 (Linear).</summary>
public sealed class FeedForward : nn.Module
{
    readonly ModuleList<nn.Module> net;

    public FeedForward(long dim, int mult = 4, Device? device = null) : base(nameof(FeedForward))
    {
        long inner = dim * mult;
        net = new ModuleList<nn.Module>(new GEGLU(dim, inner, device), nn.Dropout(0.0), nn.Linear(inner, dim, device: device));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var hidden = ((GEGLU)net[0]).Forward(x);
        return ((Linear)net[2]).call(hidden);
    }
}

/// <summary>diffusers <c>BasicTransformerBlock</c>: self-attention, cross-attention to text, GEGLU feed-forward (pre-norm, residual).</summary>
public sealed class BasicTransformerBlock : nn.Module
{
    readonly LayerNorm norm1;
    readonly Attention attn1;
    readonly LayerNorm norm2;
    readonly Attention attn2;
    readonly LayerNorm norm3;
    readonly FeedForward ff;

    public BasicTransformerBlock(long dim, int heads, long dimHead, long crossAttentionDim, Device? device = null) : base(nameof(BasicTransformerBlock))
    {
        norm1 = nn.LayerNorm(dim, device: device);
        attn1 = new Attention(dim, null, heads, dimHead, device: device);
        norm2 = nn.LayerNorm(dim, device: device);
        attn2 = new Attention(dim, crossAttentionDim, heads, dimHead, device: device);
        norm3 = nn.LayerNorm(dim, device: device);
        ff = new FeedForward(dim, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor context)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(attn1.Forward(norm1.call(x)));
        h = h.Plus(attn2.Forward(norm2.call(h), context));
        h = h.Plus(ff.Forward(norm3.call(h)));
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>Transformer2DModel</c> (spatial transformer): GroupNorm, proj_in, transformer blocks, proj_out, residual.</summary>
public sealed class Transformer2DModel : nn.Module
{
    readonly GroupNorm norm;
    readonly nn.Module<Tensor, Tensor> proj_in;
    readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    readonly nn.Module<Tensor, Tensor> proj_out;
    readonly bool linearProjection;

    public Transformer2DModel(long channels, int heads, long crossAttentionDim, int groups, bool useLinearProjection, int layers = 1, Device? device = null)
        : base(nameof(Transformer2DModel))
    {
        linearProjection = useLinearProjection;
        norm = ModuleInit.GroupNorm(groups, channels, 1e-6, device);
        proj_in = useLinearProjection ? nn.Linear(channels, channels, device: device) : nn.Conv2d(channels, channels, 1, device: device);
        transformer_blocks = new ModuleList<BasicTransformerBlock>(
            Enumerable.Range(0, layers).Select(_ => new BasicTransformerBlock(channels, heads, channels / heads, crossAttentionDim, device)).ToArray());
        proj_out = useLinearProjection ? nn.Linear(channels, channels, device: device) : nn.Conv2d(channels, channels, 1, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor context)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var hidden = norm.call(x);
        if (linearProjection) hidden = proj_in.call(hidden.permute(0, 2, 3, 1).reshape(b, h * w, c));
        else hidden = CheckedConvolution.Call(proj_in, hidden).permute(0, 2, 3, 1).reshape(b, h * w, c);
        foreach (var block in transformer_blocks) hidden = block.Forward(hidden, context);
        if (linearProjection) hidden = proj_out.call(hidden).reshape(b, h, w, c).permute(0, 3, 1, 2);
        else hidden = CheckedConvolution.Call(proj_out, hidden.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous());
        return hidden.Plus(x).MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers <c>TimestepEmbedding</c>: Linear-SiLU-Linear on the sinusoidal projection.</summary>
public sealed class TimestepEmbedding : nn.Module
{
    readonly Linear linear_1;
    readonly Linear linear_2;

    public TimestepEmbedding(long inChannels, long timeEmbedDim, Device? device = null) : base(nameof(TimestepEmbedding))
    {
        linear_1 = nn.Linear(inChannels, timeEmbedDim, device: device);
        linear_2 = nn.Linear(timeEmbedDim, timeEmbedDim, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var hidden = F.silu(linear_1.call(x));
        return linear_2.call(hidden);
    }
}

/// <summary>
/// The prompt's pooled embedding for the time embedding (<see cref="UNetConfig.AdditionEmbedType"/>): layer norm, mean over
/// the token positions (padding included: the encoder's output there is a function of the prompt too), a linear map to
/// the time-embedding width. Every ResNet block adds its projection of the sum, so text reaches levels without attention.
/// </summary>
public sealed class PooledTextEmbedding : nn.Module
{
    public const string Type = "text_mean";
    readonly LayerNorm norm;
    readonly Linear proj;

    public PooledTextEmbedding(long contextDim, long timeEmbedDim, Device? device = null) : base(nameof(PooledTextEmbedding))
    {
        norm = nn.LayerNorm(contextDim, device: device);
        proj = nn.Linear(contextDim, timeEmbedDim, device: device);
        RegisterComponents();
    }

    /// <summary>The layer a U-Net of this config (or a branch's copy of its encoder) has: null when the config adds none.</summary>
    public static PooledTextEmbedding? For(UNetConfig config, Device? device = null) =>
        config.AdditionEmbedType == Type ? new PooledTextEmbedding(config.CrossAttentionDim, config.TimeEmbedDim, device) : null;

    /// <summary>context [B, T, D] -> [B, time embedding width].</summary>
    public Tensor Forward(Tensor context)
    {
        using var scope = NewDisposeScope();
        return proj.call(norm.call(context).mean([1])).MoveToOuterDisposeScope();
    }
}

/// <summary>Sinusoidal timestep projection (diffusers <c>Timesteps</c> / <c>get_timestep_embedding</c>).</summary>
public static class TimestepProjection
{
    /// <summary>emb[i] = t * exp(-ln(10000) * i / (half - shift)); output [sin, cos] or [cos, sin] when flipped.</summary>
    public static Tensor Embed(Tensor timesteps, int dim, bool flipSinToCos, int freqShift)
    {
        using var scope = NewDisposeScope();
        int half = dim / 2;
        var exponent = ScalarOps.Range(half, float32, timesteps.device).Times(-Math.Log(10000.0) / (half - freqShift));
        var args = timesteps.to(float32).unsqueeze(1) * exponent.exp().unsqueeze(0);
        var emb = flipSinToCos ? cat([args.cos(), args.sin()], 1) : cat([args.sin(), args.cos()], 1);
        if (dim % 2 == 1) emb = F.pad(emb, [0, 1]);
        return emb.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A 3x3, stride-1, padding-1 convolution computed as unfold + batched matmul with the module's own weight and bias, so
/// parameters and state-dict keys are those of the <see cref="Conv2d"/>. The U-Net's output convolution runs this way:
/// oneDNN's backward pass of a convolution whose output channels are not a multiple of its vector block (12 of 16 on
/// AVX-512, of 8 with AVX-2 kernels) returned wrong input gradients for batches above 1 (off by 40-100% of their size,
/// now and then NaN), measured on an AMD EPYC in 2026-12 (<see cref="OneDnn"/>); forward outputs and weight gradients were right.
/// </summary>
public static class MatmulConvolution
{
    /// <summary>Told of every convolution computed here on this thread (the module and its output): forward hooks do not see them.</summary>
    [ThreadStatic] internal static Action<Conv2d, Tensor>? Observer;

    public static Tensor Conv3x3(Conv2d conv, Tensor input)
    {
        var output = Conv3x3(input, conv.weight ?? throw new InvalidOperationException("the convolution has no weight"), conv.bias);
        Observer?.Invoke(conv, output);
        return output;
    }

    /// <summary>The same with a weight [O, C, 3, 3] and an optional bias [O] given as tensors.</summary>
    public static Tensor Conv3x3(Tensor input, Tensor weight, Tensor? bias)
    {
        if (weight.dim() != 4 || weight.shape[2] != 3 || weight.shape[3] != 3 || input.dim() != 4 || input.shape[1] != weight.shape[1])
            throw new ArgumentException($"expected a 3x3 convolution over [B, {weight.shape[1]}, H, W]; weight is [{string.Join(", ", weight.shape)}], input [{string.Join(", ", input.shape)}]");
        using var scope = NewDisposeScope();
        long batch = input.shape[0], height = input.shape[2], width = input.shape[3], outputs = weight.shape[0];
        var columns = F.unfold(input, 3, padding: 1); // [B, C*9, H*W], in the weight's (C, kh, kw) order
        // bmm, not matmul: matmul picks a different kernel when the weight requires grad (it folds the batch into the
        // GEMM otherwise), so a frozen and a trainable copy of one model would round differently.
        var output = weight.reshape(1, outputs, -1).expand(batch, -1, -1).bmm(columns);
        if (bias is not null) output = output.Plus(bias.view(1, outputs, 1));
        return output.view(batch, outputs, height, width).MoveToOuterDisposeScope();
    }

    /// <summary>Any convolution without groups or dilation, by unfold + bmm (<see cref="CheckedConvolution"/>'s reference and fallback).</summary>
    public static Tensor Convolve(Tensor input, Tensor weight, Tensor? bias, (long H, long W) stride, (long H, long W) padding)
    {
        if (weight.dim() != 4 || input.dim() != 4 || input.shape[1] != weight.shape[1])
            throw new ArgumentException($"expected a convolution over [B, {weight.shape[1]}, H, W]; weight is [{string.Join(", ", weight.shape)}], input [{string.Join(", ", input.shape)}]");
        using var scope = NewDisposeScope();
        long batch = input.shape[0], outputs = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3];
        long height = (input.shape[2] + 2 * padding.H - kh) / stride.H + 1, width = (input.shape[3] + 2 * padding.W - kw) / stride.W + 1;
        var columns = F.unfold(input, (kh, kw), dilation: (1, 1), padding: (padding.H, padding.W), stride: (stride.H, stride.W));
        var output = weight.reshape(1, outputs, -1).expand(batch, -1, -1).bmm(columns);
        if (bias is not null) output = output.Plus(bias.view(1, outputs, 1));
        return output.view(batch, outputs, height, width).MoveToOuterDisposeScope();
    }
}
