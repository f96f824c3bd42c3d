using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

// Field names are snake_case on purpose: TorchSharp registers submodules by field name, so they mirror the HF
// transformers CLIP parameter names and a checkpoint key is a module path here.
#pragma warning disable IDE1006

namespace RetriBooru.Modeling.Clip;

/// <summary>The sizes of a CLIP transformer stack; HF <c>CLIPTextConfig</c> and <c>CLIPVisionConfig</c> share these fields.</summary>
public interface IClipEncoderConfig
{
    int HiddenSize { get; }
    int IntermediateSize { get; }
    int NumHiddenLayers { get; }
    int NumAttentionHeads { get; }
    /// <summary>"quick_gelu" (OpenAI CLIP) or "gelu".</summary>
    string HiddenAct { get; }
    double LayerNormEps { get; }
}

/// <summary>transformers <c>CLIPAttention</c>: q/k/v/out projections with bias.</summary>
public sealed class ClipAttention : nn.Module
{
    readonly Linear q_proj;
    readonly Linear k_proj;
    readonly Linear v_proj;
    readonly Linear out_proj;
    readonly int heads;

    public ClipAttention(long width, int heads, Device? device = null) : base("CLIPAttention")
    {
        if (width % heads != 0) throw new ArgumentException($"CLIP: width {width} not divisible by {heads} heads");
        this.heads = heads;
        q_proj = nn.Linear(width, width, device: device);
        k_proj = nn.Linear(width, width, device: device);
        v_proj = nn.Linear(width, width, device: device);
        out_proj = nn.Linear(width, width, device: device);
        RegisterComponents();
    }

    /// <param name="mask">Boolean mask broadcastable to [B, heads, T, T] (true = may attend, e.g. causal), or null for full attention.</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        var q = q_proj.call(x).view(b, n, heads, -1).transpose(1, 2);
        var k = k_proj.call(x).view(b, n, heads, -1).transpose(1, 2);
        var v = v_proj.call(x).view(b, n, heads, -1).transpose(1, 2);
        var attended = F.scaled_dot_product_attention(q, k, v, attn_mask: mask);
        return out_proj.call(attended.transpose(1, 2).reshape(b, n, -1)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>CLIPMLP</c>: fc1, activation, fc2.</summary>
public sealed class ClipMlp : nn.Module
{
    readonly Linear fc1;
    readonly Linear fc2;
    readonly bool quickGelu;

    public ClipMlp(long width, long intermediate, string activation, Device? device = null) : base("CLIPMLP")
    {
        quickGelu = activation switch
        {
            "quick_gelu" => true,
            "gelu" => false,
            _ => throw new ArgumentException($"CLIP: unsupported hidden_act '{activation}' (quick_gelu or gelu)"),
        };
        fc1 = nn.Linear(width, intermediate, device: device);
        fc2 = nn.Linear(intermediate, width, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = fc1.call(x);
        // OpenAI CLIP was trained with quick_gelu: x * sigmoid(1.702 x).
        h = quickGelu ? h * h.Times(1.702).sigmoid() : F.gelu(h);
        return fc2.call(h).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>CLIPEncoderLayer</c>: x + attn(layer_norm1(x)), then x + mlp(layer_norm2(x)).</summary>
public sealed class ClipEncoderLayer : nn.Module
{
    // Declaration order is registration order, which seeded initialisation draws in: keep it.
    readonly ClipAttention self_attn;
    readonly LayerNorm layer_norm1;
    readonly ClipMlp mlp;
    readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(IClipEncoderConfig config, Device? device = null) : base("CLIPEncoderLayer")
    {
        self_attn = new ClipAttention(config.HiddenSize, config.NumAttentionHeads, device);
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        mlp = new ClipMlp(config.HiddenSize, config.IntermediateSize, config.HiddenAct, device);
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(self_attn.Forward(layer_norm1.call(x), mask));
        h = h.Plus(mlp.Forward(layer_norm2.call(h)));
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>CLIPEncoder</c>: the stack of layers (<c>encoder.layers.N</c>), shared by the text and vision towers.</summary>
public sealed class ClipEncoder : nn.Module
{
    readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(IClipEncoderConfig config, Device? device = null) : base("CLIPEncoder")
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config, device)).ToArray());
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in layers) x = layer.Forward(x, mask);
        return x.MoveToOuterDisposeScope();
    }
}
