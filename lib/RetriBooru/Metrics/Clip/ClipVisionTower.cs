using RetriBooru.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace RetriBooru.Metrics.Clip;

#pragma warning disable IDE1006
/// <summary>vision_model.embeddings: class_embedding, patch_embedding (conv, no bias), position_embedding.</summary>
public sealed class ClipVisionEmbeddings : Module<Tensor, Tensor>
{
    readonly Parameter class_embedding;
    readonly Conv2d patch_embedding;
    readonly Embedding position_embedding;

    public ClipVisionEmbeddings(ClipVisionConfig config) : base("embeddings")
    {
        class_embedding = new Parameter(randn(config.HiddenSize));
        patch_embedding = Conv2d(3, config.HiddenSize, config.PatchSize, stride: config.PatchSize, bias: false);
        position_embedding = Embedding(config.NumPatches + 1, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        long b = pixels.shape[0];
        var patches = patch_embedding.forward(pixels).flatten(2).transpose(1, 2); // [B, patches, D]
        var cls = class_embedding.view(1, 1, -1).expand(b, 1, -1);
        var x = cat([cls, patches], 1);
        return x.Plus(position_embedding.weight!.unsqueeze(0));
    }
}

/// <summary>vision_model: embeddings -> pre_layrnorm -> encoder -> post_layernorm of the class token.</summary>
public sealed class ClipVisionTransformer : Module<Tensor, Tensor>
{
    readonly ClipVisionEmbeddings embeddings;
    readonly LayerNorm pre_layrnorm, post_layernorm; // "pre_layrnorm" is HF's spelling.
    readonly ClipEncoder encoder;

    public ClipVisionTransformer(ClipVisionConfig config) : base("vision_model")
    {
        embeddings = new ClipVisionEmbeddings(config);
        pre_layrnorm = LayerNorm(config.HiddenSize, config.LayerNormEps);
        encoder = new ClipEncoder(config.NumLayers, config.HiddenSize, config.IntermediateSize, config.NumHeads, config.LayerNormEps, config.Activation);
        post_layernorm = LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>Pooled output [B, hidden].</summary>
    public override Tensor forward(Tensor pixels)
    {
        var h = encoder.forward(pre_layrnorm.forward(embeddings.forward(pixels)), null);
        return post_layernorm.forward(h[.., 0]);
    }
}

/// <summary>
/// CLIP image tower (HF CLIPVisionModelWithProjection layout): image_embeds = visual_projection(vision_model(pixels)).
/// Input: [B, 3, S, S] normalised with CLIP's mean/std (see <see cref="ClipImageEmbedder"/>).
/// </summary>
public sealed class ClipVisionTower : Module<Tensor, Tensor>
{
    readonly ClipVisionTransformer vision_model;
    readonly Linear visual_projection;

    public ClipVisionConfig Config { get; }

    public ClipVisionTower(ClipVisionConfig config) : base("clip_vision")
    {
        config.Validate();
        TorchRuntime.EnsureLoaded();
        Config = config;
        vision_model = new ClipVisionTransformer(config);
        visual_projection = Linear(config.HiddenSize, config.ProjectionDim, hasBias: false);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels) => visual_projection.forward(vision_model.forward(pixels));

    /// <summary>Builds the tower and loads it from a CLIP state dict (HF key names; e.g. read from model.safetensors).</summary>
    public static ClipVisionTower FromStateDict(ClipVisionConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string sourceName = "CLIP state dict")
    {
        var tower = new ClipVisionTower(config);
        ClipStateDict.Load(tower, stateDict, ["vision_model.", "visual_projection."], sourceName);
        tower.eval();
        return tower;
    }
}
#pragma warning restore IDE1006
