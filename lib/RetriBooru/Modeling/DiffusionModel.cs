using RetriBooru.Modeling.Clip;
using RetriBooru.Modeling.Tokenizers;
using RetriBooru.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Modeling;

/// <summary>
/// A text-to-image diffusion model: U-Net, optional VAE (null = pixel space), text encoder and tokenizer,
/// built from one <see cref="ModelConfig"/>. Loading and saving live in <c>RetriBooru.Weights.ModelStore</c>.
/// </summary>
public sealed class DiffusionModel : IDisposable
{
    public ModelConfig Config { get; }
    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL? Vae { get; }
    public ClipTextModel TextEncoder { get; }
    public IPromptTokenizer Tokenizer { get; }

    public DiffusionModel(ModelConfig config, IPromptTokenizer tokenizer, Device? device = null)
    {
        TorchRuntime.EnsureLoaded();
        // Configs from files were checked where they were read (naming the file); this catches the ones built in code.
        ConfigBounds.Check(config, $"model config '{config.Name}'");
        if (tokenizer.VocabSize > config.TextEncoder.VocabSize)
            throw new ArgumentException($"tokenizer has {tokenizer.VocabSize} tokens but the text encoder only {config.TextEncoder.VocabSize}");
        if (tokenizer.MaxLength > config.TextEncoder.MaxPositionEmbeddings)
            throw new ArgumentException($"tokenizer emits {tokenizer.MaxLength} tokens but the text encoder has {config.TextEncoder.MaxPositionEmbeddings} positions");
        if (config.Vae is null && config.Unet.InChannels != 3 * config.PatchSize * config.PatchSize)
            throw new ArgumentException($"config '{config.Name}': a pixel-space U-Net with patch size {config.PatchSize} needs {3 * config.PatchSize * config.PatchSize} input channels, not {config.Unet.InChannels}");
        if (config.Vae is null && config.ImageSize % config.PatchSize != 0)
            throw new ArgumentException($"config '{config.Name}': image size {config.ImageSize} is not a multiple of patch size {config.PatchSize}");
        Config = config;
        Tokenizer = tokenizer;
        Unet = new UNet2DConditionModel(config.Unet, device);
        Vae = config.Vae is null ? null : new AutoencoderKL(config.Vae, device);
        TextEncoder = new ClipTextModel(config.TextEncoder, device);
    }

    /// <summary>The config with the text encoder's vocabulary sized to a tag tokenizer (from-scratch models).</summary>
    public static ModelConfig FitToTokenizer(ModelConfig config, IPromptTokenizer tokenizer) =>
        config with { TextEncoder = config.TextEncoder with { VocabSize = tokenizer.VocabSize, MaxPositionEmbeddings = Math.Max(tokenizer.MaxLength, 1) } };

    public Device Device => Unet.parameters().First().device;

    /// <summary>Named components, in the order and under the names of the diffusers folder layout.</summary>
    public IEnumerable<(string Name, nn.Module Module)> Components()
    {
        yield return ("unet", Unet);
        if (Vae is not null) yield return ("vae", Vae);
        yield return ("text_encoder", TextEncoder);
    }

    public Tensor TokenIds(IReadOnlyList<string> prompts)
    {
        var ids = new long[prompts.Count * Tokenizer.MaxLength];
        for (int i = 0; i < prompts.Count; i++) Tokenizer.Encode(prompts[i]).CopyTo(ids, i * Tokenizer.MaxLength);
        return tensor(ids, [prompts.Count, Tokenizer.MaxLength], dtype: int64, device: Device);
    }

    /// <summary>Prompts -> text encoder hidden states [B, T, D].</summary>
    public Tensor EncodePrompts(IReadOnlyList<string> prompts)
    {
        using var ids = TokenIds(prompts);
        return TextEncoder.Forward(ids);
    }

    /// <summary>Images in [-1, 1] -> the U-Net's input space (VAE latent mean x scaling factor, or the pixels themselves).</summary>
    public Tensor ToModelSpace(Tensor images, bool sample = false, Generator? generator = null) =>
        Vae is not null ? Vae.EncodeToLatent(images, sample, generator)
        : Config.PatchSize > 1 ? nn.functional.pixel_unshuffle(images, Config.PatchSize)
        : images.alias();

    /// <summary>The U-Net's space -> images in [-1, 1].</summary>
    public Tensor ToImages(Tensor latents)
    {
        if (Vae is null)
        {
            if (Config.PatchSize <= 1) return latents.Clamped(-1, 1);
            using var pixels = nn.functional.pixel_shuffle(latents, Config.PatchSize);
            return pixels.Clamped(-1, 1);
        }
        using var decoded = Vae.DecodeFromLatent(latents);
        return decoded.Clamped(-1, 1);
    }

    /// <summary>Shape of one sample in model space, [C, H, W].</summary>
    public long[] SampleShape => [Config.Unet.InChannels, Config.LatentSize, Config.LatentSize];

    public void Dispose()
    {
        Unet.Dispose();
        Vae?.Dispose();
        TextEncoder.Dispose();
    }
}
