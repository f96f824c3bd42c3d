using RetriBooru.Settings;
using System.Text.Json.Serialization;

namespace RetriBooru.Modeling;

/// <summary>
/// Structure of a <see cref="UNet2DConditionModel"/>, with the fields and defaults of diffusers'
/// <c>UNet2DConditionModel</c> config (the subset Stable Diffusion 1.x uses).
/// </summary>
public sealed record UNetConfig
{
    public int SampleSize { get; init; } = 64;
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    /// <summary>One per level: "CrossAttnDownBlock2D" or "DownBlock2D".</summary>
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    /// <summary>One per level, deepest first: "UpBlock2D" or "CrossAttnUpBlock2D".</summary>
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>Number of attention heads (diffusers names this <c>attention_head_dim</c> for SD1.x, a known misnomer).</summary>
    public int AttentionHeads { get; init; } = 8;
    public int CrossAttentionDim { get; init; } = 768;
    public int NormNumGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Transformer proj_in/proj_out as Linear (SD2) instead of 1x1 Conv (SD1).</summary>
    public bool UseLinearProjection { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    /// <summary>
    /// null (SD1.x) or <see cref="PooledTextEmbedding.Type"/>: the prompt's mean embedding is added to the time embedding,
    /// so every ResNet block, those of levels without attention included, is steered by the text (this project's own
    /// type; diffusers' "text" pools by attention).
    /// </summary>
    public string? AdditionEmbedType { get; init; }

    public int TimeEmbedDim => BlockOutChannels[0] * 4;

    public void Validate()
    {
        if (BlockOutChannels.Length == 0) throw new ArgumentException("unet: block_out_channels is empty");
        if (DownBlockTypes.Length != BlockOutChannels.Length || UpBlockTypes.Length != BlockOutChannels.Length)
            throw new ArgumentException($"unet: {BlockOutChannels.Length} levels but {DownBlockTypes.Length} down and {UpBlockTypes.Length} up block types");
        foreach (var c in BlockOutChannels)
            if (c % NormNumGroups != 0) throw new ArgumentException($"unet: channels {c} not divisible by norm_num_groups {NormNumGroups}");
        foreach (var t in DownBlockTypes)
            if (t is not ("CrossAttnDownBlock2D" or "DownBlock2D")) throw new ArgumentException($"unet: unknown down block type '{t}'");
        foreach (var t in UpBlockTypes)
            if (t is not ("CrossAttnUpBlock2D" or "UpBlock2D")) throw new ArgumentException($"unet: unknown up block type '{t}'");
        foreach (var c in BlockOutChannels)
            if (c % AttentionHeads != 0) throw new ArgumentException($"unet: channels {c} not divisible by {AttentionHeads} heads");
        if (AdditionEmbedType is not (null or PooledTextEmbedding.Type))
            throw new ArgumentException($"unet: unknown addition_embed_type '{AdditionEmbedType}' (known: {PooledTextEmbedding.Type})");
    }
}

/// <summary>Structure of an <see cref="AutoencoderKL"/> (diffusers' <c>AutoencoderKL</c> config).</summary>
public sealed record VaeConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LatentChannels { get; init; } = 4;
    public int[] BlockOutChannels { get; init; } = [128, 256, 512, 512];
    public int LayersPerBlock { get; init; } = 2;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 512;
    public double ScalingFactor { get; init; } = 0.18215;

    /// <summary>Spatial down-sampling factor between pixels and latents.</summary>
    public int DownsampleFactor => 1 << (BlockOutChannels.Length - 1);
}

/// <summary>
/// Structure of a CLIP text transformer (transformers' <c>CLIPTextConfig</c>): the SD text encoder
/// (<see cref="Clip.ClipTextModel"/>) and the text tower of the CLIP metrics (<see cref="Clip.ClipTextTower"/>,
/// which alone reads <see cref="ProjectionDim"/> and <see cref="EosTokenId"/>). The defaults are SD1.5's text encoder,
/// the text tower of openai/clip-vit-large-patch14.
/// </summary>
public sealed record TextEncoderConfig : Clip.IClipEncoderConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 768;
    public int IntermediateSize { get; init; } = 3072;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 12;
    public int MaxPositionEmbeddings { get; init; } = 77;
    /// <summary>"quick_gelu" (CLIP) or "gelu".</summary>
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>Width of the text_projection into the space the image tower shares.</summary>
    public int ProjectionDim { get; init; } = 768;
    /// <summary>The end-of-text token; the text tower pools the hidden state at its first occurrence.</summary>
    public int EosTokenId { get; init; } = 49407;

    /// <summary>Text tower of openai/clip-vit-base-patch32 / -patch16.</summary>
    public static TextEncoderConfig VitB { get; } = new() { HiddenSize = 512, IntermediateSize = 2048, NumAttentionHeads = 8, ProjectionDim = 512 };
    /// <summary>Text tower of openai/clip-vit-large-patch14 (= SD1.5's text encoder).</summary>
    public static TextEncoderConfig VitL14 { get; } = new();
}

/// <summary>DDPM training schedule (diffusers' <c>DDPMScheduler</c> config fields).</summary>
public sealed record ScheduleConfig
{
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.00085;
    public double BetaEnd { get; init; } = 0.012;
    /// <summary>"scaled_linear" (SD, made for latents), "linear" (DDPM) or "squaredcos_cap_v2" (the cosine schedule of Nichol and Dhariwal, made for pixels).</summary>
    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.ScaledLinear;
    /// <summary>Rescale the betas so the last timestep has zero SNR (Lin et al. 2024): sampling then starts from pure noise, as training saw it. Needs v-prediction.</summary>
    public bool RescaleBetasZeroSnr { get; init; }
    /// <summary>How DDIM picks its timesteps: "leading" (SD's default; the first step is below T) or "trailing" (starts at T - 1; pairs with zero terminal SNR).</summary>
    public TimestepSpacing TimestepSpacing { get; init; } = TimestepSpacing.Leading;
    /// <summary>
    /// With prediction_type "sample": blend the network's x0 with the noisy input as EDM's preconditioning does
    /// (Karras et al. 2022): x0 = c x_t / sqrt(alpha_bar) + (1 - c) F, c = sigma_data^2 / (sigma^2 + sigma_data^2),
    /// sigma^2 = (1 - alpha_bar) / alpha_bar. At low noise the input passes through (no blur from a network that
    /// cannot copy it); at high noise the network's smooth x0 decides. 0 = plain x-prediction.
    /// </summary>
    public double SigmaData { get; init; }
    /// <summary>The last DDIM step ends at alpha_bar = 1 (returns the clean estimate) instead of alpha_bar_0 (SD keeps a trace of noise).</summary>
    public bool SetAlphaToOne { get; init; }
    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;
    /// <summary>Added to DDIM timesteps (SD uses 1).</summary>
    public int StepsOffset { get; init; } = 1;
    /// <summary>
    /// Clamp the predicted x0 to [-1, 1] while sampling (and re-derive eps from it). Off for SD's latents,
    /// on for pixel-space models, where early high-noise x0 guesses otherwise push the trajectory off the data range.
    /// </summary>
    public bool ClipSample { get; init; }
}

/// <summary>How prompts become token ids: the CLIP BPE (SD weights) or the dataset's tag vocabulary (from scratch).</summary>
public enum TokenizerKind { ClipBpe, Tags }

/// <summary>
/// One model size, as data: U-Net, optional VAE (null = the U-Net works in pixel space), text encoder,
/// tokenizer kind and schedule. <see cref="ModelConfigs"/> holds the named ones.
/// </summary>
public sealed record ModelConfig
{
    public required string Name { get; init; }
    public required UNetConfig Unet { get; init; }
    public VaeConfig? Vae { get; init; }
    public required TextEncoderConfig TextEncoder { get; init; }
    public TokenizerKind Tokenizer { get; init; } = TokenizerKind.ClipBpe;
    public ScheduleConfig Schedule { get; init; } = new();
    /// <summary>Image side in pixels the model is trained/sampled at.</summary>
    public int ImageSize { get; init; } = 512;
    /// <summary>
    /// Without a VAE: the lossless pixel-unshuffle codec folds each PxP pixel patch into channels
    /// (3 x 32 x 32 -> 12 x 16 x 16 for P = 2), cutting the U-Net's spatial cost by P^2. 1 = raw pixels.
    /// </summary>
    public int PatchSize { get; init; } = 1;

    [JsonIgnore] public bool PixelSpace => Vae is null;
    [JsonIgnore] public int LatentSize => Vae is null ? ImageSize / PatchSize : ImageSize / Vae.DownsampleFactor;
}

/// <summary>The named model configurations.</summary>
public static class ModelConfigs
{
    /// <summary>Stable Diffusion 1.5: the published U-Net, VAE and CLIP ViT-L/14 text encoder.</summary>
    public static ModelConfig Sd15 { get; } = new()
    {
        Name = "sd15",
        Unet = new UNetConfig(),
        Vae = new VaeConfig(),
        TextEncoder = new TextEncoderConfig(),
        Tokenizer = TokenizerKind.ClipBpe,
        ImageSize = 512,
    };

    /// <summary>
    /// A from-scratch model for 2 CPU cores: 32x32 RGB images through the lossless pixel-unshuffle codec
    /// (2x2 patches -> 12 x 16 x 16; no VAE, which would need its own training run), three U-Net levels
    /// (32/64/64 channels at 16/8/4) with cross-attention at 8 and 4, one ResNet per level, and a 2-layer,
    /// 64-wide CLIP-style text transformer over the dataset's tag vocabulary (one token per tag).
    /// Trained with x-prediction; samples clip x0 to [-1, 1] and end on the clean estimate.
    /// </summary>
    public static ModelConfig Tiny { get; } = new()
    {
        Name = "tiny",
        Unet = new UNetConfig
        {
            SampleSize = 16,
            InChannels = 12,
            OutChannels = 12,
            BlockOutChannels = [32, 64, 64],
            DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            UpBlockTypes = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            LayersPerBlock = 1,
            AttentionHeads = 4,
            CrossAttentionDim = 64,
            NormNumGroups = 8,
        },
        Vae = null,
        TextEncoder = new TextEncoderConfig
        {
            VocabSize = 512,
            HiddenSize = 64,
            IntermediateSize = 256,
            NumHiddenLayers = 2,
            NumAttentionHeads = 4,
            MaxPositionEmbeddings = 32,
            HiddenAct = "gelu",
        },
        Tokenizer = TokenizerKind.Tags,
        // x-prediction (the network outputs the clean image), min-SNR weighted (TrainingRecipe), x0 clipped, and the last
        // DDIM step returning the clean estimate. Measured (docs/development-notes.md, "Sample quality"): v-prediction samples stayed
        // coloured speckle (its errors at mid noise are noise-like and DDIM freezes them in); x-prediction's errors are
        // smooth, and its samples show clean backgrounds and figures. Earlier, epsilon prediction was worse still: its
        // high-noise x0 guesses are the noise error times sqrt((1 - a)/a), up to 14.6x.
        Schedule = new ScheduleConfig { ClipSample = true, PredictionType = PredictionType.Sample, SetAlphaToOne = true },
        ImageSize = 32,
        PatchSize = 2,
    };

    public static IReadOnlyList<ModelConfig> All { get; } = [Tiny, Sd15];

    public static ModelConfig Get(string name) =>
        All.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown model config '{name}'; known: {string.Join(", ", All.Select(c => c.Name))}");
}
