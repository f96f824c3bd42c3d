using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields mirror transformers' CLIP parameter names

namespace RetriBooru.Modeling.Clip;

/// <summary>
/// Structure of a CLIP vision tower (transformers' <c>CLIPVisionConfig</c>; the defaults are its defaults, ViT-B/32).
/// The text tower's counterpart is <see cref="TextEncoderConfig"/>.
/// </summary>
public sealed record ClipVisionConfig : IClipEncoderConfig
{
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 32;
    public int ProjectionDim { get; init; } = 512;
    /// <summary>"quick_gelu" (OpenAI CLIP) or "gelu".</summary>
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;

    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);

    /// <summary>openai/clip-vit-base-patch32.</summary>
    public static ClipVisionConfig VitB32 { get; } = new();
    /// <summary>openai/clip-vit-base-patch16.</summary>
    public static ClipVisionConfig VitB16 { get; } = new() { PatchSize = 16 };
    /// <summary>openai/clip-vit-large-patch14 (the SD1.5 text encoder's sibling).</summary>
    public static ClipVisionConfig VitL14 { get; } = new() { HiddenSize = 1024, IntermediateSize = 4096, NumHiddenLayers = 24, NumAttentionHeads = 16, PatchSize = 14, ProjectionDim = 768 };
}

/// <summary>transformers <c>CLIPVisionEmbeddings</c>: class_embedding, patch_embedding (conv, no bias), position_embedding.</summary>
public sealed class ClipVisionEmbeddings : nn.Module
{
    readonly Parameter class_embedding;
    readonly Conv2d patch_embedding;
    readonly Embedding position_embedding;

    public ClipVisionEmbeddings(ClipVisionConfig config, Device? device = null) : base("CLIPVisionEmbeddings")
    {
        if (config.ImageSize % config.PatchSize != 0) throw new ArgumentException($"CLIP: image size {config.ImageSize} is not divisible by patch size {config.PatchSize}");
        class_embedding = new Parameter(randn(config.HiddenSize, device: device));
        patch_embedding = nn.Conv2d(3, config.HiddenSize, config.PatchSize, stride: config.PatchSize, bias: false, device: device);
        position_embedding = nn.Embedding(config.NumPatches + 1, config.HiddenSize, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        long b = pixels.shape[0];
        var patches = CheckedConvolution.Forward(patch_embedding, pixels).flatten(2).transpose(1, 2); // [B, patches, D]
        var cls = class_embedding.view(1, 1, -1).expand(b, 1, -1);
        var x = cat([cls, patches], 1);
        return x.Plus(position_embedding.weight!.unsqueeze(0)).MoveToOuterDisposeScope();
    }
}

/// <summary>transformers <c>CLIPVisionTransformer</c> (<c>vision_model</c>): embeddings, pre_layrnorm, encoder, post_layernorm of the class token.</summary>
public sealed class ClipVisionTransformer : nn.Module
{
    readonly ClipVisionEmbeddings embeddings;
    readonly LayerNorm pre_layrnorm; // HF's spelling
    readonly ClipEncoder encoder;
    readonly LayerNorm post_layernorm;

    public ClipVisionTransformer(ClipVisionConfig config, Device? device = null) : base("CLIPVisionTransformer")
    {
        embeddings = new ClipVisionEmbeddings(config, device);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        encoder = new ClipEncoder(config, device);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>Pooled output [B, hidden]: the class token after the last layer (no attention mask).</summary>
    public Tensor Forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var h = encoder.Forward(pre_layrnorm.call(embeddings.Forward(pixels)), null);
        return post_layernorm.call(h[.., 0]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// transformers <c>CLIPVisionModelWithProjection</c>, the image tower of a CLIP model (keys <c>vision_model.*</c>,
/// <c>visual_projection.weight</c>): image_embeds = visual_projection(vision_model(pixels)). Input: [B, 3, S, S]
/// normalised with CLIP's mean/std (see <c>RetriBooru.Metrics.ClipImageEmbedder</c>). Load weights with
/// <c>RetriBooru.Weights.ClipStateDict</c>.
/// </summary>
public sealed class ClipVisionTower : nn.Module
{
    readonly ClipVisionTransformer vision_model;
    readonly Linear visual_projection;

    public ClipVisionConfig Config { get; }

    public ClipVisionTower(ClipVisionConfig config, Device? device = null) : base("CLIPVisionModelWithProjection")
    {
        TorchRuntime.EnsureLoaded();
        Config = config;
        vision_model = new ClipVisionTransformer(config, device);
        visual_projection = nn.Linear(config.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return visual_projection.call(vision_model.Forward(pixels)).MoveToOuterDisposeScope();
    }
}
