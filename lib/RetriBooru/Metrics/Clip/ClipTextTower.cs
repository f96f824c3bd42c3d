using RetriBooru.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetriBooru.Metrics.Clip;

#pragma warning disable IDE1006
/// <summary>text_model.embeddings: token_embedding + position_embedding.</summary>
public sealed class ClipTextEmbeddings : Module<Tensor, Tensor>
{
    readonly Embedding token_embedding, position_embedding;

    public ClipTextEmbeddings(ClipTextConfig config) : base("embeddings")
    {
        token_embedding = Embedding(config.VocabSize, config.HiddenSize);
        position_embedding = Embedding(config.MaxPositions, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var positions = ScalarOps.Range(ids.shape[1], int64, ids.device);
        return token_embedding.forward(ids).Plus(position_embedding.forward(positions).unsqueeze(0));
    }
}

/// <summary>text_model: embeddings -> causal encoder -> final_layer_norm; pooled at each sequence's first EOS token.</summary>
public sealed class ClipTextTransformer : Module<Tensor, Tensor>
{
    readonly ClipTextEmbeddings embeddings;
    readonly ClipEncoder encoder;
    readonly LayerNorm final_layer_norm;
    readonly int _eos;

    public ClipTextTransformer(ClipTextConfig config) : base("text_model")
    {
        _eos = config.EosTokenId;
        embeddings = new ClipTextEmbeddings(config);
        encoder = new ClipEncoder(config.NumLayers, config.HiddenSize, config.IntermediateSize, config.NumHeads, config.LayerNormEps, config.Activation);
        final_layer_norm = LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>Pooled output [B, hidden] for token ids [B, T] (each row must contain the EOS token).</summary>
    public override Tensor forward(Tensor ids)
    {
        long t = ids.shape[1];
        var causal = ScalarOps.Filled([t, t], double.NegativeInfinity, float32, ids.device).triu(1);
        var h = final_layer_norm.forward(encoder.forward(embeddings.forward(ids), causal));
        using var eos = _eos.ToScalar();
        var isEos = ids.eq(eos);
        if (!isEos.any(1).all().item<bool>()) throw new ArgumentException($"every token sequence must contain the EOS token {_eos}");
        // First EOS position per row: argmax over an int mask returns the first maximum.
        var eosPosition = isEos.to(int32).argmax(1);
        return h[ScalarOps.Range(ids.shape[0], int64, ids.device), eosPosition];
    }
}

/// <summary>CLIP text tower (HF CLIPTextModelWithProjection layout): text_embeds = text_projection(text_model(ids)).</summary>
public sealed class ClipTextTower : Module<Tensor, Tensor>
{
    readonly ClipTextTransformer text_model;
    readonly Linear text_projection;

    public ClipTextConfig Config { get; }

    public ClipTextTower(ClipTextConfig config) : base("clip_text")
    {
        config.Validate();
        TorchRuntime.EnsureLoaded();
        Config = config;
        text_model = new ClipTextTransformer(config);
        text_projection = Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) => text_projection.forward(text_model.forward(ids));

    public static ClipTextTower FromStateDict(ClipTextConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string sourceName = "CLIP state dict")
    {
        var tower = new ClipTextTower(config);
        ClipStateDict.Load(tower, stateDict, ["text_model.", "text_projection."], sourceName);
        tower.eval();
        return tower;
    }
}
#pragma warning restore IDE1006
