using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics.Clip;

// Field names below are the HF transformers CLIP parameter names, so a checkpoint key maps to a field path directly.
#pragma warning disable IDE1006

/// <summary>Multi-head self-attention (q_proj, k_proj, v_proj, out_proj; all with bias).</summary>
public sealed class ClipAttention : Module<Tensor, Tensor?, Tensor>
{
    readonly Linear q_proj, k_proj, v_proj, out_proj;
    readonly int _heads;

    public ClipAttention(int hidden, int heads) : base("self_attn")
    {
        _heads = heads;
        q_proj = Linear(hidden, hidden);
        k_proj = Linear(hidden, hidden);
        v_proj = Linear(hidden, hidden);
        out_proj = Linear(hidden, hidden);
        RegisterComponents();
    }

    /// <param name="mask">Additive attention mask broadcastable to [B, heads, T, T] (e.g. causal), or null.</param>
    public override Tensor forward(Tensor x, Tensor? mask)
    {
        long b = x.shape[0], t = x.shape[1], d = x.shape[2];
        Tensor Split(Tensor y) => y.view(b, t, _heads, d / _heads).transpose(1, 2);
        var attended = functional.scaled_dot_product_attention(Split(q_proj.forward(x)), Split(k_proj.forward(x)), Split(v_proj.forward(x)), mask);
        return out_proj.forward(attended.transpose(1, 2).reshape(b, t, d));
    }
}

/// <summary>fc1 -> activation -> fc2.</summary>
public sealed class ClipMlp : Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;
    readonly bool _quickGelu;

    public ClipMlp(int hidden, int intermediate, string activation) : base("mlp")
    {
        fc1 = Linear(hidden, intermediate);
        fc2 = Linear(intermediate, hidden);
        _quickGelu = activation == "quick_gelu";
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = fc1.forward(x);
        // OpenAI CLIP was trained with quick_gelu: x * sigmoid(1.702 x).
        h = _quickGelu ? h * sigmoid(h.Times(1.702)) : functional.gelu(h);
        return fc2.forward(h);
    }
}

/// <summary>Pre-norm transformer block: x + attn(layer_norm1(x)), then x + mlp(layer_norm2(x)).</summary>
public sealed class ClipEncoderLayer : Module<Tensor, Tensor?, Tensor>
{
    readonly ClipAttention self_attn;
    readonly LayerNorm layer_norm1, layer_norm2;
    readonly ClipMlp mlp;

    public ClipEncoderLayer(int hidden, int intermediate, int heads, double eps, string activation) : base("layer")
    {
        self_attn = new ClipAttention(hidden, heads);
        layer_norm1 = LayerNorm(hidden, eps);
        mlp = new ClipMlp(hidden, intermediate, activation);
        layer_norm2 = LayerNorm(hidden, eps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        x = x.Plus(self_attn.forward(layer_norm1.forward(x), mask));
        return x.Plus(mlp.forward(layer_norm2.forward(x)));
    }
}

/// <summary>The stack of encoder layers (encoder.layers.N).</summary>
public sealed class ClipEncoder : Module<Tensor, Tensor?, Tensor>
{
    readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(int count, int hidden, int intermediate, int heads, double eps, string activation) : base("encoder")
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, count).Select(_ => new ClipEncoderLayer(hidden, intermediate, heads, eps, activation)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor? mask)
    {
        foreach (var layer in layers) x = layer.forward(x, mask);
        return x;
    }
}
#pragma warning restore IDE1006
