using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields mirror transformers' CLIP parameter names

namespace RetriBooru.Modeling.Clip;

/// <summary>transformers <c>CLIPTextEmbeddings</c>: token embedding + position embedding.</summary>
public sealed class ClipTextEmbeddings : nn.Module
{
    readonly Embedding token_embedding;
    readonly Embedding position_embedding;

    public ClipTextEmbeddings(TextEncoderConfig config, Device? device = null) : base("CLIPTextEmbeddings")
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

/// <summary>transformers <c>CLIPTextTransformer</c> (<c>text_model</c>): embeddings, causal encoder, final layer norm.</summary>
public sealed class ClipTextTransformer : nn.Module
{
    readonly ClipTextEmbeddings embeddings;
    readonly ClipEncoder encoder;
    readonly LayerNorm final_layer_norm;
    readonly int maxPositions;

    public ClipTextTransformer(TextEncoderConfig config, Device? device = null) : base("CLIPTextTransformer")
    {
        maxPositions = config.MaxPositionEmbeddings;
        embeddings = new ClipTextEmbeddings(config, device);
        encoder = new ClipEncoder(config, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>ids [B, T] (T &lt;= max_position_embeddings) -> last hidden state [B, T, hidden].</summary>
    public Tensor Forward(Tensor ids)
    {
        long n = ids.shape[1];
        if (n > maxPositions) throw new ArgumentException($"{n} tokens exceed the text encoder's {maxPositions} positions");
        using var scope = NewDisposeScope();
        var h = embeddings.Forward(ids);
        // Causal mask: token i attends to tokens <= i (CLIP's text transformer is autoregressive-masked).
        var mask = ones(n, n, dtype: @bool, device: ids.device).tril();
        h = encoder.Forward(h, mask);
        return final_layer_norm.call(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers <c>CLIPTextModel</c>: the last hidden state [B, T, D], which Stable Diffusion feeds to the U-Net's
/// cross-attention (the SD text encoder; keys <c>text_model.*</c>).
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
    public Tensor Forward(Tensor ids) => text_model.Forward(ids);
}

/// <summary>
/// transformers <c>CLIPTextModelWithProjection</c>, the text tower of a CLIP model (keys <c>text_model.*</c>,
/// <c>text_projection.weight</c>): the hidden state at each sequence's first EOS token, projected into the space
/// the image tower shares. Load weights with <c>RetriBooru.Weights.ClipStateDict</c>.
/// </summary>
public sealed class ClipTextTower : nn.Module
{
    readonly ClipTextTransformer text_model;
    readonly Linear text_projection;

    public TextEncoderConfig Config { get; }

    public ClipTextTower(TextEncoderConfig config, Device? device = null) : base("CLIPTextModelWithProjection")
    {
        TorchRuntime.EnsureLoaded();
        Config = config;
        text_model = new ClipTextTransformer(config, device);
        text_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <summary>text_embeds [B, projection_dim] for token ids [B, T] (each row must contain the EOS token).</summary>
    public Tensor Forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        using var eos = Config.EosTokenId.ToScalar();
        var isEos = ids.eq(eos);
        if (!isEos.any(1).all().item<bool>()) throw new ArgumentException($"every token sequence must contain the EOS token {Config.EosTokenId}");
        var h = text_model.Forward(ids);
        // First EOS position per row: argmax over an int mask returns the first maximum.
        var eosPosition = isEos.to(int32).argmax(1);
        var pooled = h[ScalarOps.Range(ids.shape[0], int64, ids.device), eosPosition];
        return text_projection.call(pooled).MoveToOuterDisposeScope();
    }
}
