using RetriBooru.Settings;
using RetriBooru.Modeling;
using RetriBooru.Modeling.Tokenizers;
using RetriBooru.Weights;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>Builds a fresh model for training from a named config and a dataset.</summary>
public static class BaseModelFactory
{
    /// <summary>
    /// Tag-tokenizer configs get a vocabulary built from the dataset's prompts and a text encoder sized to it;
    /// CLIP-BPE configs need the SD tokenizer folder.
    /// </summary>
    /// <param name="seed">Seeds the weight initialisation (a private generator per component, derived from (seed, "model-init/NAME")).</param>
    public static DiffusionModel Create(ModelConfig config, IImagePromptDataset data, long seed, string? tokenizerDir = null, Device? device = null)
    {
        IPromptTokenizer tokenizer = config.Tokenizer switch
        {
            // The concept words of references must be tokens too, or "face" and "clothes" would both be unknown.
            TokenizerKind.Tags => TagTokenizer.Build(data.Prompts.Concat(Data.Concepts.All.Select(c => c.Name())), config.TextEncoder.MaxPositionEmbeddings),
            _ => tokenizerDir is null
                ? throw new ArgumentException($"config '{config.Name}' uses the CLIP tokenizer: pass the SD tokenizer folder (vocab.json + merges.txt)")
                : ModelStore.LoadTokenizer(tokenizerDir, config.TextEncoder.MaxPositionEmbeddings),
        };
        var fitted = config.Tokenizer == TokenizerKind.Tags ? DiffusionModel.FitToTokenizer(config, tokenizer) : config;
        var model = new DiffusionModel(fitted, tokenizer, device);
        foreach (var (name, module) in model.Components())
            SeededInit.Apply(module, Runtime.Seeding.DeriveLong(seed, "model-init/" + name));
        return model;
    }
}
