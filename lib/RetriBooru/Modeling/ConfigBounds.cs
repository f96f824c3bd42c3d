using RetriBooru.Modeling.Clip;
using RetriBooru.Runtime;
using static RetriBooru.Runtime.SizeLimits;

namespace RetriBooru.Modeling;

/// <summary>
/// Checks a config read from a file against <see cref="SizeLimits"/> before any layer is built: every width, count and
/// resolution, then the parameters the config implies (estimated in double, so no product can overflow). Errors name
/// the file and the field (the snake_case names of config.json, model_index.json and checkpoint metadata).
/// </summary>
public static class ConfigBounds
{
    public static void Check(ModelConfig config, string source)
    {
        Check(config.Unet, source);
        if (config.Vae is not null) Check(config.Vae, source);
        Check(config.TextEncoder, source);
        Check(config.Schedule, source);
        Require(config.ImageSize, 1, MaxSampleSize, source, "image_size");
        Require(config.PatchSize, 1, MaxPatchSize, source, "patch_size");
    }

    public static void Check(UNetConfig c, string source)
    {
        RequireLevels(c.SampleSize, c.InChannels, c.OutChannels, c.BlockOutChannels, c.LayersPerBlock, c.NormNumGroups, source);
        Require(c.AttentionHeads, 1, MaxAttentionHeads, source, "attention_heads");
        Require(c.CrossAttentionDim, 1, MaxWidth, source, "cross_attention_dim");
        try { c.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}"); }
        // Per level: (2 layers + 1) ResNets (two 3x3 convs, a time projection) and as many transformer blocks
        // (self and cross attention, GEGLU feed-forward: ~16 c^2 + 2 c d); the middle block is one more level.
        double timeDim = 4.0 * c.BlockOutChannels[0];
        double total = timeDim * timeDim * 2;
        foreach (var width in c.BlockOutChannels.Append(c.BlockOutChannels[^1]))
        {
            double w = width;
            total += (2.0 * c.LayersPerBlock + 1) * (18 * w * w + timeDim * w + 16 * w * w + 2 * w * c.CrossAttentionDim);
        }
        RequireParameters(total, source, "U-Net");
    }

    public static void Check(VaeConfig c, string source)
    {
        RequireLevels(c.SampleSize, c.InChannels, c.OutChannels, c.BlockOutChannels, c.LayersPerBlock, c.NormNumGroups, source);
        Require(c.LatentChannels, 1, MaxIoChannels, source, "latent_channels");
        if (!double.IsFinite(c.ScalingFactor) || c.ScalingFactor <= 0) throw new InvalidDataException($"{source}: scaling_factor {c.ScalingFactor} must be a positive finite number");
        foreach (var width in c.BlockOutChannels)
            if (width % c.NormNumGroups != 0) throw new InvalidDataException($"{source}: block_out_channels {width} is not divisible by norm_num_groups {c.NormNumGroups}");
        // Encoder and decoder: per level, (layers + 1) ResNets of two 3x3 convs.
        RequireParameters(c.BlockOutChannels.Sum(w => 2.0 * (c.LayersPerBlock + 1) * 18 * w * (double)w), source, "VAE");
    }

    /// <param name="component">How the parameter-count error names the model ("text encoder", "CLIP text tower").</param>
    public static void Check(TextEncoderConfig c, string source, string component = "text encoder")
    {
        Require(c.VocabSize, 1, MaxVocabSize, source, "vocab_size");
        CheckEncoder(c, source);
        Require(c.MaxPositionEmbeddings, 1, MaxPositions, source, "max_position_embeddings");
        Require(c.ProjectionDim, 1, MaxWidth, source, "projection_dim");
        Require(c.EosTokenId, 1, MaxVocabSize, source, "eos_token_id");
        double h = c.HiddenSize;
        RequireParameters((double)c.VocabSize * h + c.MaxPositionEmbeddings * h + EncoderParameters(c), source, component);
    }

    public static void Check(ClipVisionConfig c, string source)
    {
        CheckEncoder(c, source);
        Require(c.ImageSize, 1, MaxSampleSize, source, "image_size");
        Require(c.PatchSize, 1, MaxSampleSize, source, "patch_size");
        Require(c.ProjectionDim, 1, MaxWidth, source, "projection_dim");
        if (c.ImageSize % c.PatchSize != 0) throw new InvalidDataException($"{source}: image_size {c.ImageSize} is not divisible by patch_size {c.PatchSize}");
        double h = c.HiddenSize, patches = Math.Pow((double)c.ImageSize / c.PatchSize, 2);
        RequireParameters(EncoderParameters(c) + (patches + 1) * h + 3.0 * c.PatchSize * c.PatchSize * h, source, "CLIP vision tower");
    }

    /// <summary>The fields of the transformer stack both CLIP towers share.</summary>
    static void CheckEncoder(IClipEncoderConfig c, string source)
    {
        Require(c.HiddenSize, 1, MaxWidth, source, "hidden_size");
        Require(c.IntermediateSize, 1, 4 * MaxWidth, source, "intermediate_size");
        Require(c.NumHiddenLayers, 1, MaxLayers, source, "num_hidden_layers");
        Require(c.NumAttentionHeads, 1, MaxAttentionHeads, source, "num_attention_heads");
        if (c.HiddenSize % c.NumAttentionHeads != 0) throw new InvalidDataException($"{source}: hidden_size {c.HiddenSize} is not divisible by num_attention_heads {c.NumAttentionHeads}");
        if (c.HiddenAct is not ("gelu" or "quick_gelu")) throw new InvalidDataException($"{source}: hidden_act '{c.HiddenAct}' is not gelu or quick_gelu");
        if (!double.IsFinite(c.LayerNormEps) || c.LayerNormEps <= 0) throw new InvalidDataException($"{source}: layer_norm_eps {c.LayerNormEps} must be a positive finite number");
    }

    /// <summary>Per layer: four h x h attention projections and the h x intermediate MLP, both ways.</summary>
    static double EncoderParameters(IClipEncoderConfig c) =>
        c.NumHiddenLayers * (4.0 * c.HiddenSize * c.HiddenSize + 2.0 * c.HiddenSize * c.IntermediateSize);

    public static void Check(ScheduleConfig c, string source)
    {
        Require(c.NumTrainTimesteps, 2, MaxTrainTimesteps, source, "num_train_timesteps");
        Require(c.StepsOffset, 0, c.NumTrainTimesteps - 1, source, "steps_offset");
        if (!double.IsFinite(c.BetaStart) || !double.IsFinite(c.BetaEnd) || c.BetaStart <= 0 || c.BetaEnd >= 1 || c.BetaStart > c.BetaEnd)
            throw new InvalidDataException($"{source}: beta_start {c.BetaStart} and beta_end {c.BetaEnd} must satisfy 0 < beta_start <= beta_end < 1");
    }

    /// <summary>branch.json's reference attention heads must divide every U-Net width they attend over.</summary>
    public static void Check(RetriNetOptions options, UNetConfig unet, string source)
    {
        if (options.AttentionHeads is not int heads) return;
        Require(heads, 1, MaxAttentionHeads, source, "retrinet.attention_heads");
        foreach (var width in unet.BlockOutChannels)
            if (width % heads != 0) throw new InvalidDataException($"{source}: retrinet.attention_heads {heads} does not divide the U-Net's {width} channels");
        Require(options.ReferenceTimestep, 0, MaxTrainTimesteps, source, "retrinet.reference_timestep");
    }

    /// <summary>The fields a U-Net and a VAE share: resolution, input and output channels, the widths of the levels.</summary>
    static void RequireLevels(int sampleSize, int inChannels, int outChannels, int[] widths, int layersPerBlock, int normGroups, string source)
    {
        Require(sampleSize, 1, MaxSampleSize, source, "sample_size");
        Require(inChannels, 1, MaxIoChannels, source, "in_channels");
        Require(outChannels, 1, MaxIoChannels, source, "out_channels");
        if (widths is null || widths.Length is 0 or > MaxLevels) throw new InvalidDataException($"{source}: block_out_channels has {widths?.Length ?? 0} levels; 1 to {MaxLevels} are allowed");
        foreach (var width in widths) Require(width, 1, MaxWidth, source, "block_out_channels");
        Require(layersPerBlock, 1, MaxLayers, source, "layers_per_block");
        Require(normGroups, 1, MaxWidth, source, "norm_num_groups");
    }
}
