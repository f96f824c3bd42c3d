namespace RetriBooru.Runtime;

/// <summary>
/// Every bound on a size read from a file, in one place. Model configs (config.json, model_index.json, a checkpoint's
/// metadata, branch.json), tokenizer files and safetensors headers are checked against these before anything is
/// allocated, so a crafted or corrupt value (num_train_timesteps 2000000000, a million-wide layer) is refused with
/// the file and the field instead of a native out-of-memory. The bounds are generous multiples of SD 1.5 / SDXL.
/// </summary>
public static class SizeLimits
{
    /// <summary>Channels of one U-Net or VAE level (SD 1.5: 1280), and the cross-attention and text widths.</summary>
    public const int MaxWidth = 8192;
    /// <summary>Resolution levels of a U-Net or VAE (SD 1.5: 4).</summary>
    public const int MaxLevels = 8;
    /// <summary>layers_per_block and num_hidden_layers (SD 1.5: 2 and 12).</summary>
    public const int MaxLayers = 64;
    /// <summary>Attention heads (SD 1.5: 8 and 12).</summary>
    public const int MaxAttentionHeads = 256;
    /// <summary>sample_size and image_size, in pixels or latents (SD 1.5: 64 latents, 512 pixels).</summary>
    public const int MaxSampleSize = 4096;
    /// <summary>Input and output channels of a U-Net or VAE (pixel-unshuffle with 16x16 patches: 768).</summary>
    public const int MaxIoChannels = 1024;
    /// <summary>Pixel-unshuffle patch side.</summary>
    public const int MaxPatchSize = 16;
    /// <summary>Tokens of a text encoder's vocabulary (CLIP: 49408).</summary>
    public const int MaxVocabSize = 1_000_000;
    /// <summary>Text positions (CLIP: 77).</summary>
    public const int MaxPositions = 4096;
    /// <summary>Diffusion training timesteps (SD: 1000).</summary>
    public const int MaxTrainTimesteps = 100_000;
    /// <summary>Parameters of one model component, estimated from its config (SDXL's U-Net: 2.6e9; SD 1.5's: 0.86e9).</summary>
    public const double MaxParameters = 1e10;

    /// <summary>References of one training example in a manifest (the paper: 2 face + 2 clothes).</summary>
    public const int MaxReferencesPerExample = 64;

    /// <summary>Points of one experiment's sweep (its cartesian product), counted before the points are expanded.</summary>
    public const int MaxSweepPoints = 10_000;

    /// <summary>A safetensors header (real SD checkpoints: ~100 KB).</summary>
    public const long MaxSafeTensorsHeaderBytes = 100L * 1024 * 1024;
    /// <summary>Dimensions of one tensor in a safetensors file.</summary>
    public const int MaxTensorDimensions = 16;
    /// <summary>A JSON config file (config.json, model_index.json, branch.json, trainer_state.json).</summary>
    public const long MaxConfigFileBytes = 16L * 1024 * 1024;
    /// <summary>A tokenizer file (CLIP's vocab.json is 1 MB, merges.txt 0.5 MB).</summary>
    public const long MaxTokenizerFileBytes = 256L * 1024 * 1024;

    /// <summary>Throws <see cref="InvalidDataException"/> "SOURCE: FIELD VALUE is outside [MIN, MAX]" unless min &lt;= value &lt;= max.</summary>
    public static int Require(int value, int min, int max, string source, string field) =>
        value >= min && value <= max ? value : throw new InvalidDataException($"{source}: {field} {value} is outside [{min}, {max}]");

    /// <summary>Checks an estimated element or parameter count (computed in double: it cannot overflow).</summary>
    public static void RequireParameters(double count, string source, string component) =>
        _ = count <= MaxParameters ? count
            : throw new InvalidDataException($"{source}: the {component} would have ~{count:G3} parameters, more than the {MaxParameters:G3} limit");
}
