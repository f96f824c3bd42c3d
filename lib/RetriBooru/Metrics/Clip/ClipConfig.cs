namespace RetriBooru.Metrics.Clip;

/// <summary>Sizes of a CLIP vision tower (HF CLIPVisionConfig names). Activation: "quick_gelu" (OpenAI) or "gelu".</summary>
public sealed record ClipVisionConfig(
    int HiddenSize, int IntermediateSize, int NumLayers, int NumHeads, int ImageSize, int PatchSize, int ProjectionDim,
    double LayerNormEps = 1e-5, string Activation = "quick_gelu")
{
    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);

    /// <summary>openai/clip-vit-base-patch32.</summary>
    public static ClipVisionConfig VitB32 { get; } = new(768, 3072, 12, 12, 224, 32, 512);
    /// <summary>openai/clip-vit-base-patch16.</summary>
    public static ClipVisionConfig VitB16 { get; } = new(768, 3072, 12, 12, 224, 16, 512);
    /// <summary>openai/clip-vit-large-patch14 (the SD1.5 text encoder's sibling).</summary>
    public static ClipVisionConfig VitL14 { get; } = new(1024, 4096, 24, 16, 224, 14, 768);

    public void Validate()
    {
        if (HiddenSize % NumHeads != 0) throw new ArgumentException($"hidden size {HiddenSize} is not divisible by {NumHeads} heads");
        if (ImageSize % PatchSize != 0) throw new ArgumentException($"image size {ImageSize} is not divisible by patch size {PatchSize}");
        if (Activation is not ("quick_gelu" or "gelu")) throw new ArgumentException($"unknown activation '{Activation}' (quick_gelu or gelu)");
    }
}

/// <summary>Sizes of a CLIP text tower (HF CLIPTextConfig names).</summary>
public sealed record ClipTextConfig(
    int VocabSize, int HiddenSize, int IntermediateSize, int NumLayers, int NumHeads, int MaxPositions, int ProjectionDim,
    int EosTokenId = 49407, double LayerNormEps = 1e-5, string Activation = "quick_gelu")
{
    /// <summary>Text tower of openai/clip-vit-base-patch32 / -patch16.</summary>
    public static ClipTextConfig Base { get; } = new(49408, 512, 2048, 12, 8, 77, 512);
    /// <summary>Text tower of openai/clip-vit-large-patch14.</summary>
    public static ClipTextConfig Large { get; } = new(49408, 768, 3072, 12, 12, 77, 768);

    public void Validate()
    {
        if (HiddenSize % NumHeads != 0) throw new ArgumentException($"hidden size {HiddenSize} is not divisible by {NumHeads} heads");
        if (Activation is not ("quick_gelu" or "gelu")) throw new ArgumentException($"unknown activation '{Activation}' (quick_gelu or gelu)");
    }
}
