using TorchSharp;
using static TorchSharp.torch;
using RetriBooru.Runtime;
using RetriBooru.Settings;

namespace RetriBooru.Modeling;

/// <summary>
/// The references of a batch, already in the U-Net's input space (pixels for tiny, VAE latents for SD):
/// <c>Images</c> [B, R, C, H, W], the frozen text encoder's encoding of each reference's concept word
/// (<c>face</c>, <c>clothes</c>) as <c>ConceptContext</c> [B, R, T, D], and <c>Present</c> [B, R] (bool),
/// false for padding slots (fewer references than R) and for references dropped in training.
/// </summary>
public sealed record ReferenceBatch(Tensor Images, Tensor ConceptContext, Tensor Present)
{
    /// <summary>
    /// Optional store for features that depend only on the references (not on the noisy sample or timestep).
    /// A sampler sets it so that branches encode the references once per image instead of once per step; training
    /// leaves it null because the features need gradients.
    /// </summary>
    public ReferenceFeatureCache? Cache { get; init; }

    public long Batch => Images.shape[0];
    public long Count => Images.shape[1];

    public void Validate()
    {
        if (Images.dim() != 5) throw new ArgumentException($"reference images must be [B, R, C, H, W], got [{string.Join(", ", Images.shape)}]");
        if (ConceptContext.dim() != 4 || ConceptContext.shape[0] != Batch || ConceptContext.shape[1] != Count)
            throw new ArgumentException($"concept context must be [B={Batch}, R={Count}, T, D], got [{string.Join(", ", ConceptContext.shape)}]");
        if (Present.dim() != 2 || Present.shape[0] != Batch || Present.shape[1] != Count || Present.dtype != ScalarType.Bool)
            throw new ArgumentException($"present must be a bool [B={Batch}, R={Count}] tensor");
    }

    /// <summary>The same references with every one marked absent: the "no reference" branch of guidance.</summary>
    public ReferenceBatch WithoutReferences() => this with { Present = zeros_like(Present) };

    /// <summary>Keeps each sample's references with probability 1 - p (all or none per sample), for reference dropout.</summary>
    public ReferenceBatch DropWhole(double probability, Generator generator)
    {
        if (probability <= 0) return this;
        var keep = rand([Batch, 1], generator: generator, device: Present.device).IsAtLeast(probability);
        return this with { Present = Present.logical_and(keep) };
    }

    /// <summary>
    /// Drops each reference slot on its own with probability p (one draw per slot, [B, R], only when p &gt; 0), so a sample
    /// may keep its face crops without its clothes crops or the reverse.
    /// </summary>
    public ReferenceBatch DropEach(double probability, Generator generator)
    {
        if (probability <= 0) return this;
        var keep = rand([Batch, Count], generator: generator, device: Present.device).IsAtLeast(probability);
        return this with { Present = Present.logical_and(keep) };
    }
}

/// <summary>Reference features kept across the denoising steps of one sampling call; owns (and disposes) its tensors.</summary>
public sealed class ReferenceFeatureCache : IDisposable
{
    readonly Dictionary<string, IReadOnlyList<Tensor>> _entries = [];

    /// <summary>Returns the cached features for <paramref name="key"/>, computing and keeping them on first use.</summary>
    public IReadOnlyList<Tensor> GetOrAdd(string key, Func<IReadOnlyList<Tensor>> compute)
    {
        if (_entries.TryGetValue(key, out var cached)) return cached;
        var computed = compute().Select(t => t.detach().DetachFromDisposeScope()).ToList();
        _entries[key] = computed;
        return computed;
    }

    public void Dispose()
    {
        foreach (var list in _entries.Values) foreach (var t in list) t.Dispose();
        _entries.Clear();
    }
}

/// <summary>
/// A denoiser that can be conditioned on retrieved references; the trainer and the sampler only see this.
/// </summary>
public interface IReferenceConditionedModel
{
    /// <summary>Short name used in configs and reports: retrinet, controlnet, ipadapter, text-only.</summary>
    ModelKind Kind { get; }

    /// <summary>The module holding every parameter (for state dicts and checkpoints).</summary>
    nn.Module Module { get; }

    /// <summary>The parameters the optimiser updates; everything else is frozen (requires_grad = false).</summary>
    IReadOnlyList<TorchSharp.Modules.Parameter> TrainableParameters();

    /// <summary>Predicts the model target (epsilon or v) for a noisy sample. <paramref name="references"/> null = no references.</summary>
    Tensor Predict(Tensor noisy, Tensor timesteps, Tensor textContext, ReferenceBatch? references);

    /// <summary>Whether <see cref="Predict"/> may run on several threads at once (false when it passes per-call state through its modules).</summary>
    bool ConcurrentPredict => true;
}

/// <summary>Helpers shared by the reference-conditioned models.</summary>
public static class UNetLevels
{
    /// <summary>
    /// For each level, the index in the down-path skip list of its last feature before downsampling
    /// (skip 0 is conv_in; each level adds one skip per ResNet plus one for its downsampler).
    /// </summary>
    public static int[] LevelFeatureIndices(UNetConfig config)
    {
        int levels = config.BlockOutChannels.Length;
        var indices = new int[levels];
        int next = 1;
        for (int l = 0; l < levels; l++)
        {
            indices[l] = next + config.LayersPerBlock - 1;
            next += config.LayersPerBlock + (l < levels - 1 ? 1 : 0);
        }
        return indices;
    }

    /// <summary>Channels of the hidden state entering up block <paramref name="upIndex"/> (0 = deepest).</summary>
    public static long UpBlockInputChannels(UNetConfig config, int upIndex)
    {
        var ch = config.BlockOutChannels;
        return upIndex == 0 ? ch[^1] : ch[ch.Length - upIndex];
    }

    /// <summary>A fresh copy of the U-Net's down-block structure (for branches that copy the encoder: RetriNet, ControlNet).</summary>
    public static TorchSharp.Modules.ModuleList<DownBlock> DownBlocks(UNetConfig config, Device? device)
    {
        var channels = config.BlockOutChannels;
        var blocks = new List<DownBlock>();
        long output = channels[0];
        for (int i = 0; i < channels.Length; i++)
        {
            long input = output;
            output = channels[i];
            blocks.Add(new DownBlock(input, output, config.TimeEmbedDim, config.LayersPerBlock, config.DownBlockTypes[i] == "CrossAttnDownBlock2D",
                addDownsample: i < channels.Length - 1, config, device));
        }
        return new TorchSharp.Modules.ModuleList<DownBlock>(blocks.ToArray());
    }

    /// <summary>Sets every parameter of the modules to (not) require gradients.</summary>
    public static void SetRequiresGrad(IEnumerable<nn.Module> modules, bool value)
    {
        foreach (var module in modules)
            foreach (var p in module.parameters()) p.requires_grad = value;
    }

    /// <summary>Copies parameters by name from <paramref name="source"/> into <paramref name="target"/>, for every name both have.</summary>
    public static int CopyMatchingParameters(nn.Module source, nn.Module target, string sourcePrefix = "")
    {
        var from = source.state_dict();
        int copied = 0;
        using var noGrad = no_grad();
        foreach (var (name, tensor) in target.state_dict())
        {
            if (!from.TryGetValue(sourcePrefix + name, out var value)) continue;
            if (!value.shape.SequenceEqual(tensor.shape)) throw new InvalidOperationException($"cannot copy {sourcePrefix}{name}: shape [{string.Join(", ", value.shape)}] vs [{string.Join(", ", tensor.shape)}]");
            tensor.copy_(value);
            copied++;
        }
        return copied;
    }
}
