using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using RetriBooru.Runtime;

#pragma warning disable IDE1006 // snake_case fields become state-dict keys
using RetriBooru.Settings;

namespace RetriBooru.Modeling;

/// <summary>Choices the paper leaves open, as options (defaults documented in docs/model.md#retrinet-and-baselines-retribooru-train-retribooru-sample).</summary>
public sealed record RetriNetOptions
{
    /// <summary>Initialise the retrieval encoder from the base U-Net's encoder (as ControlNet does) instead of randomly.</summary>
    public bool InitializeFromBase { get; init; } = true;
    /// <summary>Timestep at which references are encoded: they are clean images, so 0.</summary>
    public int ReferenceTimestep { get; init; }
    /// <summary>Heads of each reference cross-attention (null = the U-Net's attention heads).</summary>
    public int? AttentionHeads { get; init; }
    /// <summary>Seed of the new layers' initial weights (a private generator: independent of the global RNG).</summary>
    public long InitSeed { get; init; }
    /// <summary>
    /// Learned position embeddings (zero at initialisation) on each reference attention's queries (where a feature sits in
    /// the target) and keys (where it sits in its reference crop). Without them attention can only match by content,
    /// which a noisy target barely has: the branch then paints the references' average colour over the whole figure.
    /// </summary>
    public bool PositionEmbeddings { get; init; }
}

/// <summary>
/// The retrieval encoder: a copy of the U-Net's conv_in, time embedding and down blocks that reads each
/// reference (in model space) with its concept word's text encoding as the cross-attention context, and
/// returns one feature map per level.
/// </summary>
public sealed class RetrievalEncoder : nn.Module
{
    readonly Conv2d conv_in;
    readonly TimestepEmbedding time_embedding;
    readonly PooledTextEmbedding? add_embedding;
    readonly ModuleList<DownBlock> down_blocks;
    readonly UNetConfig _config;
    readonly int[] _levelIndices;

    public RetrievalEncoder(UNetConfig config, Device? device = null) : base(nameof(RetrievalEncoder))
    {
        _config = config;
        var channels = config.BlockOutChannels;
        conv_in = nn.Conv2d(config.InChannels, channels[0], 3, padding: 1, device: device);
        time_embedding = new TimestepEmbedding(channels[0], config.TimeEmbedDim, device);
        add_embedding = PooledTextEmbedding.For(config, device);
        down_blocks = UNetLevels.DownBlocks(config, device);
        _levelIndices = UNetLevels.LevelFeatureIndices(config);
        RegisterComponents();
    }

    /// <summary>references [N, C, H, W], concept context [N, T, D] -> one [N, C_l, H_l, W_l] map per level.</summary>
    public IReadOnlyList<Tensor> Forward(Tensor references, Tensor conceptContext, int timestep)
    {
        var t = ScalarOps.Filled([references.shape[0]], timestep, int64, references.device);
        var temb = UNet2DConditionModel.TimeEmbedding(time_embedding, add_embedding, _config, t, conceptContext, references.dtype);
        var h = CheckedConvolution.Forward(conv_in, references);
        var skips = new List<Tensor> { h };
        foreach (var block in down_blocks) h = block.Forward(h, temb, conceptContext, skips);
        return _levelIndices.Select(i => skips[i]).ToList();
    }
}

/// <summary>
/// Cross-attention from the U-Net's encoder features (queries, [B, C, H, W]) to the retrieval features of
/// all references of the sample (keys/values, [B, R*h*w, C]). Attention sums over keys, so the result
/// does not depend on the order of the references, and any number of them works.
/// </summary>
public sealed class ReferenceCrossAttention : nn.Module
{
    readonly GroupNorm norm;
    readonly LayerNorm norm_context;
    readonly Attention attn;
    readonly Parameter? query_position;
    readonly Parameter? key_position;

    /// <param name="positions">Height and width of the level for learned query/key position embeddings; null = none.</param>
    public ReferenceCrossAttention(long channels, int heads, int groups, Device? device = null, (long Height, long Width)? positions = null) : base(nameof(ReferenceCrossAttention))
    {
        norm = ModuleInit.GroupNorm(groups, channels, 1e-6, device);
        norm_context = nn.LayerNorm(channels, device: device);
        attn = new Attention(channels, channels, heads, channels / heads, device: device);
        if (positions is var (height, width))
        {
            // Zero: the layer starts as without them (and draws no random numbers, so other weights stay the same).
            query_position = new Parameter(zeros([1, channels, height, width], device: device));
            key_position = new Parameter(zeros([1, channels, height, width], device: device));
        }
        RegisterComponents();
    }

    /// <summary>The embedding [1, C, h, w] at the features' size (resized when sampling at another resolution than training).</summary>
    static Tensor At(Parameter position, long height, long width) =>
        position.shape[2] == height && position.shape[3] == width ? position
            : nn.functional.interpolate(position, [height, width], mode: InterpolationMode.Bilinear, align_corners: false);

    /// <param name="query">[B, C, H, W] U-Net encoder features of the noisy target.</param>
    /// <param name="referenceFeatures">[B, R, C, h, w] retrieval features.</param>
    /// <param name="present">[B, R] bool.</param>
    public Tensor Forward(Tensor query, Tensor referenceFeatures, Tensor present)
    {
        using var scope = NewDisposeScope();
        long b = query.shape[0], c = query.shape[1], h = query.shape[2], w = query.shape[3];
        long r = referenceFeatures.shape[1], rh = referenceFeatures.shape[3], rw = referenceFeatures.shape[4];
        var normed = norm.call(query);
        if (query_position is not null) normed = normed.Plus(At(query_position, h, w));
        var q = normed.reshape(b, c, h * w).transpose(1, 2);
        var kv = norm_context.call(referenceFeatures.permute(0, 1, 3, 4, 2).reshape(b, r * rh * rw, c));
        if (key_position is not null)
            kv = kv.Plus(At(key_position, rh, rw).permute(0, 2, 3, 1).reshape(1, 1, rh * rw, c).expand(1, r, rh * rw, c).reshape(1, r * rh * rw, c));
        // A sample without any present reference would attend to nothing (all -inf, NaN): it attends to
        // everything instead and its output is zeroed below.
        var anyPresent = present.any(1, keepdim: true);
        var tokenMask = present.logical_or(anyPresent.logical_not()).unsqueeze(-1).expand(b, r, rh * rw).reshape(b, 1, 1, r * rh * rw);
        var additive = zeros(tokenMask.shape, dtype: q.dtype, device: q.device).MaskedFill(tokenMask.logical_not(), double.NegativeInfinity);
        var attended = attn.Forward(q, kv, additive);
        var spatial = attended.transpose(1, 2).reshape(b, c, h, w);
        return (spatial * anyPresent.to(spatial.dtype).view(b, 1, 1, 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// RetriNet (RetriBooru, arXiv 2312.02521): a base U-Net whose encoder, mid block and time embedding are
/// frozen; a trainable retrieval encoder reads the references; at every level a cross-attention (queries:
/// the U-Net encoder features of the noisy target, which already carry the text prompt; keys/values: the
/// retrieval features of all references) is followed by a zero-initialised 1x1 convolution whose output
/// is added to the input of the matching, trainable decoder block. At initialisation the zero convolutions
/// make RetriNet's output equal the base U-Net's exactly.
/// </summary>
public sealed class RetriNet : nn.Module, IReferenceConditionedModel
{
    readonly UNet2DConditionModel unet;
    readonly RetrievalEncoder retrieval_encoder;
    readonly ModuleList<ReferenceCrossAttention> reference_attentions;
    readonly ModuleList<Conv2d> zero_convs;
    readonly int[] _levelIndices;

    public RetriNetOptions Options { get; }
    public UNet2DConditionModel Unet => unet;
    public ModelKind Kind => ModelKind.RetriNet;
    public nn.Module Module => this;

    public RetriNet(UNet2DConditionModel baseUnet, RetriNetOptions? options = null) : base(nameof(RetriNet))
    {
        Options = options ?? new RetriNetOptions();
        var config = baseUnet.Config;
        var device = baseUnet.parameters().First().device;
        unet = baseUnet;
        retrieval_encoder = new RetrievalEncoder(config, device);
        int levels = config.BlockOutChannels.Length;
        int heads = Options.AttentionHeads ?? config.AttentionHeads;
        // Up block i (deepest first) works at the resolution of level L-1-i.
        reference_attentions = new ModuleList<ReferenceCrossAttention>(Enumerable.Range(0, levels)
            .Select(i => new ReferenceCrossAttention(config.BlockOutChannels[levels - 1 - i], heads, config.NormNumGroups, device,
                Options.PositionEmbeddings ? LevelSize(config, levels - 1 - i) : null)).ToArray());
        zero_convs = new ModuleList<Conv2d>(Enumerable.Range(0, levels).Select(i =>
        {
            var conv = nn.Conv2d(config.BlockOutChannels[levels - 1 - i], UNetLevels.UpBlockInputChannels(config, i), 1, device: device);
            using var noGrad = no_grad();
            nn.init.zeros_(conv.weight);
            nn.init.zeros_(conv.bias);
            return conv;
        }).ToArray());
        _levelIndices = UNetLevels.LevelFeatureIndices(config);
        RegisterComponents();
        SeededInit.Apply(reference_attentions, Options.InitSeed);
        if (Options.InitializeFromBase) UNetLevels.CopyMatchingParameters(baseUnet, retrieval_encoder);
        else SeededInit.Apply(retrieval_encoder, Runtime.Seeding.DeriveLong(Options.InitSeed, "retrieval-encoder"));
        UNetLevels.SetRequiresGrad(baseUnet.EncoderModules.Concat(baseUnet.MidModules), false);
    }

    /// <summary>The feature size at <paramref name="level"/>: each downsampler (stride 2, padding 1, kernel 3) rounds up.</summary>
    static (long Height, long Width) LevelSize(UNetConfig config, int level)
    {
        long size = config.SampleSize;
        for (int l = 0; l < level; l++) size = (size + 1) / 2;
        return (size, size);
    }

    public IReadOnlyList<Parameter> TrainableParameters() =>
        unet.DecoderModules.Concat([retrieval_encoder, reference_attentions, zero_convs])
            .SelectMany(m => m.parameters()).ToList();

    public Tensor Predict(Tensor noisy, Tensor timesteps, Tensor textContext, ReferenceBatch? references)
    {
        using var scope = NewDisposeScope();
        var encoding = unet.Encode(noisy, timesteps, textContext);
        if (references is null)
            return unet.Decode(encoding, textContext).MoveToOuterDisposeScope();
        references.Validate();
        long b = references.Batch, r = references.Count;
        var flatImages = references.Images.reshape([b * r, .. references.Images.shape[2..]]);
        var flatContext = references.ConceptContext.reshape([b * r, .. references.ConceptContext.shape[2..]]);
        var features = references.Cache is { } cache
            ? cache.GetOrAdd("retrinet", () => retrieval_encoder.Forward(flatImages, flatContext, Options.ReferenceTimestep))
            : retrieval_encoder.Forward(flatImages, flatContext, Options.ReferenceTimestep);
        int levels = _levelIndices.Length;
        // Samples without any present reference get exactly the text-only decoder input (the zero
        // convolutions' biases must not leak in), which is what reference guidance contrasts against.
        var anyPresent = references.Present.any(1).to(noisy.dtype).view(b, 1, 1, 1);
        Tensor Inject(int upIndex, Tensor hidden)
        {
            int level = levels - 1 - upIndex;
            var query = encoding.DownResiduals[_levelIndices[level]];
            var refs = features[level];
            var perSample = refs.reshape([b, r, .. refs.shape[1..]]);
            var attended = reference_attentions[upIndex].Forward(query, perSample, references.Present);
            return hidden.Plus(CheckedConvolution.Forward(zero_convs[upIndex], attended) * anyPresent);
        }
        return unet.Decode(encoding, textContext, injector: Inject).MoveToOuterDisposeScope();
    }
}
