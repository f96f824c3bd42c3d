using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields mirror transformers' CLIP parameter names

namespace RetriBooru.Modeling;

/// <summary>transformers <c>CLIPAttention</c>: q/k/v/out projections with bias.</summary>
public sealed class ClipAttention : nn.Module
{
    readonly Linear q_proj;
    readonly Linear k_proj;
    readonly Linear v_proj;
    readonly Linear out_proj;
    readonly int heads;

    public ClipAttention(long width, int heads, Device? device) : base("CLIPAttention")
    {
        if (width % heads != 0) throw new ArgumentException($"text encoder: width {width} not divisible by {heads} heads");
        this.heads = heads;
        q_proj = nn.Linear(width, width, device: device);
        k_proj = nn.Linear(width, width, device: device);
        v_proj = nn.Linear(width, width, device: device);
        out_proj = nn.Linear(width, width, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask)
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

/// <summary>transformers <c>CLIPMLP</c>: fc1, activation (quick_gelu for CLIP), fc2.</summary>
public sealed class ClipMlp : nn.Module
{
    readonly Linear fc1;
    readonly Linear fc2;
    readonly bool quickGelu;

    public ClipMlp(long width, long intermediate, string activation, Device? device) : base("CLIPMLP")
    {
        quickGelu = activation switch
        {
            "quick_gelu" => true,
            "gelu" => false,
            _ => throw new ArgumentException($"text encoder: unsupported hidden_act '{activation}' (quick_gelu or gelu)"),
        };
        fc1 = nn.Linear(width, intermediate, device: device);
        fc2 = nn.Linear(intermediate, width, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = fc1.call(x);
        h = quickGelu ? h * h.Times(1.702).sigmoid() : F.gelu(h);
        return fc2.call(h).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>CLIPEncoderLayer</c>: pre-norm self-attention and MLP with residuals.</summary>
public sealed class ClipEncoderLayer : nn.Module
{
    readonly ClipAttention self_attn;
    readonly LayerNorm layer_norm1;
    readonly ClipMlp mlp;
    readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(TextEncoderConfig config, Device? device) : base("CLIPEncoderLayer")
    {
        self_attn = new ClipAttention(config.HiddenSize, config.NumAttentionHeads, device);
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        mlp = new ClipMlp(config.HiddenSize, config.IntermediateSize, config.HiddenAct, device);
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(self_attn.Forward(layer_norm1.call(x), mask));
        h = h.Plus(mlp.Forward(layer_norm2.call(h)));
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class ClipEmbeddings : nn.Module
{
    readonly Embedding token_embedding;
    readonly Embedding position_embedding;

    public ClipEmbeddings(TextEncoderConfig config, Device? device) : base("CLIPTextEmbeddings")
    {
        token_embedding = nn.Embedding(config.VocabSize, config.HiddenSize, device: device);
        position_embedding = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor ids)
    {
        using var positions = ScalarOps.Range(ids.shape[1], int64, ids.device).unsqueeze(0);
        using var tokens = token_embedding.call(ids);
        using var pos = position_embedding.call(positions);
        return tokens.Plus(pos);
    }
}

public sealed class ClipEncoder : nn.Module
{
    readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(TextEncoderConfig config, Device? device) : base("CLIPEncoder")
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config, device)).ToArray());
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        foreach (var layer in layers) x = layer.Forward(x, mask);
        return x.MoveToOuterDisposeScope();
    }
}

public sealed class ClipTextTransformer : nn.Module
{
    readonly ClipEmbeddings embeddings;
    readonly ClipEncoder encoder;
    readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(TextEncoderConfig config, Device? device) : base("CLIPTextTransformer")
    {
        embeddings = new ClipEmbeddings(config, device);
        encoder = new ClipEncoder(config, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        long n = ids.shape[1];
        var h = embeddings.Forward(ids);
        // Causal mask: token i attends to tokens <= i (CLIP's text transformer is autoregressive-masked).
        var mask = ones(n, n, dtype: @bool, device: ids.device).tril();
        h = encoder.Forward(h, mask);
        return final_layer_norm.call(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers <c>CLIPTextModel</c>: token + position embeddings, causal transformer, final layer norm.
/// Returns the last hidden state [B, T, D], which Stable Diffusion feeds to the U-Net's cross-attention.
/// </summary>
public sealed class ClipTextModel : nn.Module
{
    readonly ClipTextTransformer text_model;

    public TextEncoderConfig Config { get; }

    public ClipTextModel(TextEncoderConfig config, Device? device = null) : base("CLIPTextModel")
    {
        Config = config;
        text_model = new ClipTextTransformer(config, device);
        RegisterComponents();
    }

    /// <summary>ids [B, T] (T &lt;= max_position_embeddings) -> hidden states [B, T, hidden].</summary>
    public Tensor Forward(Tensor ids)
    {
        if (ids.shape[1] > Config.MaxPositionEmbeddings)
            throw new ArgumentException($"{ids.shape[1]} tokens exceed the text encoder's {Config.MaxPositionEmbeddings} positions");
        return text_model.Forward(ids);
    }
}
